// What the tests of the libtorch backends (torchscript_test, aoti_test) compare against: the
// references examples/models/make_models.py writes beside its models (inputs and the outputs the
// model gives for them, run directly in PyTorch), and a tolerance for float outputs.
#pragma once

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "support.hpp"

namespace actorserve::itest {

/// `name`_reference.json of the test models, parsed.
inline boost::json::object reference(const std::string& name = "mlp") {
  std::ifstream in(models_dir() + "/" + name + "_reference.json");
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return boost::json::parse(ss.str()).as_object();
}

/// Each element within 1e-5 + 1e-4 of the reference's magnitude.
inline void check_close(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(std::abs(got[i] - want[i]) <= 1e-5 + 1e-4 * std::abs(want[i]));
  }
}

/// The numbers of a nested JSON array, in order.
inline std::vector<double> flatten(const boost::json::value& v) {
  std::vector<double> out;
  if (v.is_array()) {
    for (auto& e : v.as_array()) {
      auto sub = flatten(e);
      out.insert(out.end(), sub.begin(), sub.end());
    }
  } else {
    out.push_back(v.to_number<double>());
  }
  return out;
}

} // namespace actorserve::itest
