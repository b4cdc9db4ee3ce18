// libFuzzer harness: parse_safetensors (the file loader's checks, on bytes in memory). Every
// tensor it returns must be dense and exactly as large as its dtype and shape say, and a BOOL
// tensor may hold only 0 and 1 bytes; reading every byte lets AddressSanitizer check the sizes.
#include <cstring>
#include <vector>

#include "tensor/safetensors.h"
#include "tests/fuzz/harness.h"

namespace {

void check_tensor(const seqgrad::Tensor& t) {
  FUZZ_CHECK(t.defined());
  FUZZ_CHECK(t.is_contiguous());
  std::int64_t numel = 1;
  for (const auto d : t.shape()) numel *= d;
  FUZZ_CHECK(numel == t.numel());
  const std::size_t nbytes = static_cast<std::size_t>(t.numel()) * seqgrad::dtype_size(t.dtype());
  std::vector<unsigned char> copy(nbytes);
  if (nbytes > 0) std::memcpy(copy.data(), t.raw_data(), nbytes);
  if (t.dtype() == seqgrad::DType::boolean) {
    for (const unsigned char b : copy) FUZZ_CHECK(b <= 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  seqgrad::fuzz::expect_typed_errors([&] {
    const auto file = seqgrad::parse_safetensors(seqgrad::fuzz::as_text(data, size), "fuzz");
    for (const auto& [name, t] : file.tensors) {
      FUZZ_CHECK(file.find(name) != nullptr);
      check_tensor(t);
    }
  });
  return 0;
}
