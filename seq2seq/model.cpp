// The model configuration as JSON, and Seq2Seq building the architecture it names.
// Shape legend: B batch, S source length, T target length.
#include "seq2seq/model.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "nn/loss.h"
#include "seq2seq/json_fields.h"
#include "seq2seq/transformer_model.h"
#include "tensor/elementwise.h"
#include "tensor/reduce.h"

namespace seqgrad {

Arch parse_arch(const std::string& name) {
  if (name == "rnn") return Arch::rnn;
  if (name == "transformer") return Arch::transformer;
  if (name == "decoder-only") return Arch::decoder_only;
  throw ValueError(
      fmt::format("unknown architecture '{}' (known: rnn, transformer, decoder-only)", name));
}

std::string arch_name(Arch arch) {
  switch (arch) {
    case Arch::rnn:
      return "rnn";
    case Arch::transformer:
      return "transformer";
    case Arch::decoder_only:
      return "decoder-only";
  }
  return "?";
}

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j = {{"arch", arch},           {"src_vocab", src_vocab},
                      {"tgt_vocab", tgt_vocab}, {"embed", embed},
                      {"hidden", hidden},       {"layers", layers},
                      {"cell", cell},           {"bidirectional", bidirectional},
                      {"dropout", dropout},     {"attention", attention},
                      {"style", style},         {"attention_size", attention_size},
                      {"heads", heads}};
  if (arch != "rnn") {
    j["ff"] = ff;
    j["norm_first"] = norm_first;
    j["activation"] = activation;
    j["positions"] = positions;
    j["tie_embeddings"] = tie_embeddings;
  }
  return j;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  ModelConfig c;
  if (!j.is_object()) throw ValueError("model config: expected a JSON object");
  for (const auto& [key, value] : j.items()) {
    try {
      if (key == "arch")
        c.arch = value.get<std::string>();
      else if (key == "src_vocab")
        c.src_vocab = json_integer(value, key);
      else if (key == "tgt_vocab")
        c.tgt_vocab = json_integer(value, key);
      else if (key == "embed")
        c.embed = json_integer(value, key);
      else if (key == "hidden")
        c.hidden = json_integer(value, key);
      else if (key == "layers")
        c.layers = json_integer(value, key);
      else if (key == "cell")
        c.cell = value.get<std::string>();
      else if (key == "bidirectional")
        c.bidirectional = value.get<bool>();
      else if (key == "dropout")
        c.dropout = value.get<double>();
      else if (key == "attention")
        c.attention = value.get<std::string>();
      else if (key == "style")
        c.style = value.get<std::string>();
      else if (key == "attention_size")
        c.attention_size = json_integer(value, key);
      else if (key == "heads")
        c.heads = json_integer(value, key);
      else if (key == "ff")
        c.ff = json_integer(value, key);
      else if (key == "norm_first")
        c.norm_first = value.get<bool>();
      else if (key == "activation")
        c.activation = value.get<std::string>();
      else if (key == "positions")
        c.positions = value.get<std::string>();
      else if (key == "tie_embeddings")
        c.tie_embeddings = value.get<bool>();

      else
        throw ValueError(fmt::format("model config: unknown key '{}'", key));
    } catch (const nlohmann::json::exception& e) {
      throw ValueError(
          fmt::format("model config: key '{}' has the wrong type ({})", key, e.what()));
    }
  }
  return c;
}

LossResult target_loss(const Variable& logits, const Tensor& tgt_out, double label_smoothing) {
  const Tensor targets = tgt_out.reshape({-1});
  LossResult r;
  r.loss = cross_entropy(reshape(logits, {targets.size(0), logits.size(-1)}), targets,
                         {.ignore_index = kPadId, .label_smoothing = label_smoothing});
  const Tensor real = ne(targets, Tensor::scalar(kPadId, DType::i64));
  r.tokens = static_cast<std::int64_t>(sum(real.astype(DType::f64)).item());
  return r;
}

void check_teacher_forcing(const char* op, const LossOptions& options, bool training) {
  if (training && options.teacher_forcing < 1.0) {
    throw ValueError(fmt::format(
        "{}: teacher forcing {} asks for scheduled sampling, which only --arch rnn does (a "
        "Transformer reads the whole reference target at once in training)",
        op, options.teacher_forcing));
  }
}

void check_loss_inputs(const char* op, const Tensor& src, const std::vector<std::int64_t>& lengths,
                       const Tensor& tgt_in, const Tensor& tgt_out) {
  if (!src.defined() || src.dim() != 2 || !tgt_in.defined() || tgt_in.dim() != 2 ||
      !tgt_out.defined() || tgt_in.shape() != tgt_out.shape() || tgt_in.size(0) != src.size(0) ||
      static_cast<std::int64_t>(lengths.size()) != src.size(0)) {
    throw ShapeError(fmt::format(
        "{}: source {}, target in {} and out {} must be [B,S], [B,T], [B,T], with B lengths "
        "(got {})",
        op, src.defined() ? shape_str(src.shape()) : "undefined",
        tgt_in.defined() ? shape_str(tgt_in.shape()) : "undefined",
        tgt_out.defined() ? shape_str(tgt_out.shape()) : "undefined", lengths.size()));
  }
}

namespace {
std::unique_ptr<Architecture> build(const ModelConfig& c, Arch arch, Generator& gen) {
  switch (arch) {
    case Arch::rnn:
      return std::make_unique<Recurrent>(c, gen);
    case Arch::transformer:
      return std::make_unique<TransformerSeq2Seq>(c, gen);
    case Arch::decoder_only:
      return std::make_unique<DecoderOnly>(c, gen);
  }
  throw std::logic_error("Seq2Seq: unhandled architecture");
}
}  // namespace

Seq2Seq::Seq2Seq(const ModelConfig& config, Generator& gen)
    : cfg_(config), arch_(parse_arch(config.arch)), impl_(build(config, arch_, gen)) {
  register_module("", *impl_);
  recurrent_ = dynamic_cast<const Recurrent*>(impl_.get());
}

const Recurrent& Seq2Seq::recurrent_only(const char* what) const {
  if (recurrent_ == nullptr) {
    throw ValueError(fmt::format(
        "Seq2Seq::{}: reads a recurrent model's states; this model is arch '{}' (HINT: the "
        "views that draw RNN states work for --arch rnn)",
        what, cfg_.arch));
  }
  return *recurrent_;
}

}  // namespace seqgrad
