// A Beast request body read once into one shared, uninitialized buffer: binary tensors are then
// views of it (byte_buffer::view) rather than copies, and no time goes into zero-filling a
// buffer that is overwritten at once (std::string's resize does that: ~9% of the server's CPU
// with 150 KB image requests). A body of known length is read from the socket straight into it
// (fill); the reader below serves the parser for chunked bodies. Only for reading requests;
// responses use string_body.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>

namespace actorserve {

struct shared_body {
  class value_type {
  public:
    std::string_view view() const { return {data_.get(), size_}; }
    std::size_t size() const { return size_; }
    /// What keeps view()'s bytes alive (for views of them that outlive this body).
    std::shared_ptr<const void> owner() const { return data_; }
    /// Makes the body `n` bytes long, their values unset, for the caller to write (a body of
    /// known length read straight from the socket); returns where they start, or nullptr when
    /// that much memory cannot be had (the body is then empty). Pages not yet written cost no
    /// memory, so a client that declares a length and sends nothing holds none.
    char* fill(std::size_t n) {
      if (n > capacity_ || data_.use_count() > 1) { // never write bytes a view still reads
        data_.reset(new (std::nothrow) char[n]); // uninitialized on purpose
        capacity_ = data_ ? n : 0;
      }
      size_ = data_ ? n : 0;
      return data_.get();
    }

    /// Makes the body `size` bytes at `data` (a decompressed body, for one).
    void adopt(std::shared_ptr<char[]> data, std::size_t size) {
      data_ = std::move(data);
      size_ = capacity_ = size;
    }

  private:
    friend struct shared_body;
    std::shared_ptr<char[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
  };

  static std::uint64_t size(const value_type& v) { return v.size(); }

  class reader {
  public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& b) : body_(b) {}

    void init(const boost::optional<std::uint64_t>& length, boost::beast::error_code& ec) {
      // The parser has checked the length against its body limit.
      if (length && *length > 0)
        grow(static_cast<std::size_t>(*length));
      ec = {};
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      auto n = boost::asio::buffer_size(buffers);
      if (body_.size_ + n > body_.capacity_) // chunked: no length known in advance
        grow(std::max(body_.size_ + n, body_.capacity_ * 2));
      body_.size_ += boost::asio::buffer_copy(
        boost::asio::buffer(body_.data_.get() + body_.size_, n), buffers);
      ec = {};
      return n;
    }

    void finish(boost::beast::error_code& ec) { ec = {}; }

  private:
    void grow(std::size_t capacity) {
      std::shared_ptr<char[]> bigger(new char[capacity]); // uninitialized on purpose
      if (body_.size_ > 0)
        std::memcpy(bigger.get(), body_.data_.get(), body_.size_);
      body_.data_ = std::move(bigger);
      body_.capacity_ = capacity;
    }

    value_type& body_;
  };
};

} // namespace actorserve
