#include <catch2/catch.hpp>

#include "runtime/model_backend.hpp"
#include "test_support.hpp"

using namespace actorserve;
using namespace actorserve::test;

TEST_CASE("the registry creates a compiled-in backend chosen by name", "[backend]") {
  auto names = backend_registry::global().names();
  REQUIRE(std::find(names.begin(), names.end(), "scale") != names.end());
  auto m = small_model();
  m.parameters["factor"] = "3";
  m.parameters["bias"] = "0.5";
  auto b = backend_registry::global().create("scale", backend_context{m, "cpu", 0});
  std::vector<tensor> in{fp32("x", {2, 2}, {1, 2, 3, 4})};
  auto out = b->run(in);
  REQUIRE(out.size() == 1);
  CHECK(out[0].name == "y");
  CHECK(floats(out[0]) == std::vector<float>{3.5f, 6.5f, 9.5f, 12.5f});
}

TEST_CASE("the registry names the known backends when asked for an unknown one", "[backend]") {
  auto m = small_model();
  CHECK_THROWS_WITH(backend_registry::global().create("nope", backend_context{m, "cpu", 0}),
                    Catch::Matchers::StartsWith("unknown backend \"nope\"; compiled-in backends: ")
                      && Catch::Matchers::Contains("scale"));
  CHECK_FALSE(backend_registry::global().add("scale", nullptr)); // names are unique
}

TEST_CASE("a backend's own configuration errors surface at creation", "[backend]") {
  auto m = small_model();
  m.inputs[0].dtype = datatype::INT32;
  CHECK_THROWS_WITH(backend_registry::global().create("scale", backend_context{m, "cpu", 0}),
                    "model 'm': the scale backend supports FP32 inputs only, input 'x' is INT32");
}
