// Python view of the runtime: a loaded model (weights, tokenizer), contexts over it, and the core
// Generator and scoring functions. Parameters go into the C API's structs and are checked once,
// by the core.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "src/generator.h"
#include "src/model.h"
#include "src/sampler.h"

namespace py = pybind11;

namespace {

using IdArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::vector<int32_t> to_ids(const IdArray &a) {
    if (a.ndim() != 1) throw py::value_error("token ids must be a 1-D sequence");
    return std::vector<int32_t>(a.data(), a.data() + a.size());
}

sqllm::KvMethod kv_method_of(const std::string &name) {
    if (name == "nuq") return sqllm::KvMethod::Nuq;
    if (name == "uniform") return sqllm::KvMethod::Uniform;
    throw py::value_error("kv_method must be 'nuq' or 'uniform', got '" + name + "'");
}

sqllm::SamplerParams sampler_params(float temperature, int32_t top_k, float top_p, float min_p, float repetition_penalty,
                                    int32_t repetition_window, uint64_t seed, float presence_penalty, float frequency_penalty) {
    sqllm::SamplerParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repetition_penalty = repetition_penalty;
    p.repetition_window = repetition_window;
    p.seed = seed;
    p.presence_penalty = presence_penalty;
    p.frequency_penalty = frequency_penalty;
    return p;
}

const char *end_reason_name(sqllm::EndReason r) {
    switch (r) {
    case sqllm::EndReason::MAX_TOKENS: return "max_tokens";
    case sqllm::EndReason::END_TOKEN: return "end_token";
    case sqllm::EndReason::CONTEXT_FULL: return "context_full";
    case sqllm::EndReason::NONE: break;
    }
    return "none";
}

}  // namespace

namespace sqllm_py {

void register_runtime(py::module_ &m) {
    py::class_<sqllm::Model>(m, "LoadedModel", "An .sqf model mapped and ready to run.")
        .def(py::init([](const std::string &path, bool verify, bool guard) {
                 sqllm_load_params p = sqllm_load_params_default();
                 p.verify_checksums = verify;
                 p.guard_mapping = guard;
                 py::gil_scoped_release release;
                 return sqllm::Model::load(path, p);
             }),
             py::arg("path"), py::arg("verify_checksums") = false, py::arg("guard_mapping") = false,
             "guard_mapping: see sqllm_load_params in sqllm.h (a process-wide SIGBUS handler).")
        .def_property_readonly("vocab_size", [](const sqllm::Model &mdl) { return mdl.config().vocab_size; })
        .def_property_readonly("context_length", [](const sqllm::Model &mdl) { return mdl.config().context_length; })
        .def_property_readonly("family", [](const sqllm::Model &mdl) { return mdl.config().family; })
        .def_property_readonly("num_layers", [](const sqllm::Model &mdl) { return mdl.config().num_layers; })
        .def_property_readonly("bos", [](const sqllm::Model &mdl) { return mdl.tokenizer().bos_id(); })
        .def_property_readonly("eos", [](const sqllm::Model &mdl) { return mdl.tokenizer().eos_id(); })
        .def_property_readonly("add_bos", [](const sqllm::Model &mdl) { return mdl.tokenizer().add_bos(); })
        .def_property_readonly("chat_template", [](const sqllm::Model &mdl) { return mdl.chat_template(); })
        .def("tokenize", [](const sqllm::Model &mdl, const py::object &text, bool add_bos, bool parse_special) {
            return mdl.tokenizer().encode(text_bytes(text), add_bos, parse_special);
        }, py::arg("text"), py::arg("add_bos"), py::arg("parse_special") = true)
        .def("detokenize", [](const sqllm::Model &mdl, const IdArray &ids, bool skip_special) {
            std::vector<int32_t> v = to_ids(ids);
            for (int32_t t : v)
                if (t < 0 || t >= mdl.tokenizer().vocab_size()) throw py::value_error("token id " + std::to_string(t) + " is outside the vocabulary");
            return py::bytes(mdl.tokenizer().decode(v, skip_special));
        }, py::arg("ids"), py::arg("skip_special") = false);

    const sqllm::ContextParams cd = sqllm::default_context_params();
    py::class_<sqllm::Context>(m, "Context", "One sequence over a LoadedModel: KV cache, scratch, threads.")
        .def(py::init([](const sqllm::Model &mdl, int n_ctx, int n_threads, int n_batch, bool kv_f32, int kv_bits,
                         const std::string &kv_method, bool int8, bool exact) {
                 sqllm::ContextParams p;
                 p.n_ctx = n_ctx;
                 p.n_threads = n_threads;
                 p.n_batch = n_batch;
                 p.kv_fp32 = kv_f32;
                 p.kv_bits = kv_bits;
                 p.kv_method = kv_method_of(kv_method) == sqllm::KvMethod::Uniform ? SQLLM_KV_UNIFORM : SQLLM_KV_NUQ;
                 p.int8 = int8;
                 p.exact = exact;
                 py::gil_scoped_release release;
                 return std::make_unique<sqllm::Context>(mdl, p);
             }),
             py::arg("model"), py::arg("n_ctx") = cd.n_ctx, py::arg("n_threads") = cd.n_threads, py::arg("n_batch") = cd.n_batch,
             py::arg("kv_f32") = bool(cd.kv_fp32), py::arg("kv_bits") = cd.kv_bits, py::arg("kv_method") = "nuq",
             py::arg("int8") = bool(cd.int8), py::arg("exact") = bool(cd.exact), py::keep_alive<1, 2>())
        .def_property_readonly("n_past", &sqllm::Context::n_past)
        .def_property_readonly("kv_bits", &sqllm::Context::kv_bits)
        .def_property_readonly("kv_bytes", &sqllm::Context::kv_bytes)
        .def_property_readonly("n_ctx", &sqllm::Context::n_ctx)
        .def_property_readonly("n_threads", &sqllm::Context::n_threads)
        .def("reset", &sqllm::Context::reset)
        .def("truncate", &sqllm::Context::truncate, py::arg("n"), "Keep the first n tokens of the sequence.")
        .def_property_readonly("tokens", &sqllm::Context::tokens, "The token ids of the sequence held.")
        .def("eval", [](sqllm::Context &ctx, const IdArray &ids, bool all_logits) {
            std::vector<int32_t> v = to_ids(ids);
            if (v.empty()) throw py::value_error("no tokens to evaluate");
            const py::ssize_t vocab = ctx.vocab_size();  // what Context::eval writes per token
            py::array_t<float> out(all_logits ? std::vector<py::ssize_t>{py::ssize_t(v.size()), vocab} : std::vector<py::ssize_t>{vocab});
            float *dst = out.mutable_data();
            py::gil_scoped_release release;
            ctx.eval(v.data(), int32_t(v.size()), dst, all_logits);
            return out;
        }, py::arg("ids"), py::arg("all_logits"))
        .def("nll", [](sqllm::Context &ctx, const IdArray &ids) {
            std::vector<int32_t> v = to_ids(ids);
            if (v.size() < 2) throw py::value_error("need at least two tokens");
            py::array_t<double> out(py::ssize_t(v.size() - 1));
            double *dst = out.mutable_data();
            py::gil_scoped_release release;
            sqllm::token_nll(ctx, v.data(), int32_t(v.size()), dst);
            return out;
        }, py::arg("ids"), "NLL of ids[1:] given what the context held and the ids before (sqllm_nll).")
        .def("text_nll", [](sqllm::Context &ctx, const py::object &text, int window, int max_windows) {
            const std::string bytes = text_bytes(text);
            py::gil_scoped_release release;
            const sqllm::NllSum s = sqllm::text_nll(ctx, bytes, window, max_windows);
            return std::make_pair(s.nll, s.count);
        }, py::arg("text"), py::arg("window"), py::arg("max_windows") = 0,
           "(NLL sum, tokens scored) of a text over its perplexity windows (sqllm_text_nll).");

    const sqllm::SamplerParams sd = sqllm::default_sampler_params();
    py::class_<sqllm::Generator>(m, "Generator", "Step-by-step generation over a Context (sqllm_generator_*).")
        .def(py::init([](sqllm::Context &ctx, const py::object &prompt, int max_tokens, float temperature, int top_k, float top_p,
                         float min_p, float repetition_penalty, int repetition_window, uint64_t seed, float presence_penalty,
                         float frequency_penalty) {
                 const sqllm::SamplerParams p = sampler_params(temperature, top_k, top_p, min_p, repetition_penalty, repetition_window,
                                                               seed, presence_penalty, frequency_penalty);
                 if (py::isinstance<py::str>(prompt) || py::isinstance<py::bytes>(prompt)) {
                     const std::string bytes = text_bytes(prompt);
                     py::gil_scoped_release release;
                     return std::make_unique<sqllm::Generator>(ctx, bytes, max_tokens, p);
                 }
                 std::vector<int32_t> ids = to_ids(prompt.cast<IdArray>());
                 py::gil_scoped_release release;
                 return std::make_unique<sqllm::Generator>(ctx, std::move(ids), max_tokens, p);
             }),
             py::arg("ctx"), py::arg("prompt"), py::arg("max_tokens"), py::arg("temperature") = sd.temperature,
             py::arg("top_k") = sd.top_k, py::arg("top_p") = sd.top_p, py::arg("min_p") = sd.min_p,
             py::arg("repetition_penalty") = sd.repetition_penalty, py::arg("repetition_window") = sd.repetition_window,
             py::arg("seed") = sd.seed, py::arg("presence_penalty") = sd.presence_penalty,
             py::arg("frequency_penalty") = sd.frequency_penalty, py::keep_alive<1, 2>(),
             "prompt: text (tokenized, BOS first on an empty context when the model adds one) or token ids (as they are).")
        .def("next", [](sqllm::Generator &g) -> py::object {
            int32_t token;
            {
                py::gil_scoped_release release;
                token = g.next();
            }
            if (token < 0) return py::none();
            return py::make_tuple(token, py::bytes(g.piece()));
        }, "(token, its bytes), or None at the end.")
        .def_property_readonly("stats", [](const sqllm::Generator &g) {
            const sqllm::GenerationStats &s = g.stats();
            py::dict d;
            d["prompt_tokens"] = s.prompt_tokens;
            d["generated_tokens"] = s.generated_tokens;
            d["prompt_seconds"] = s.prompt_seconds;
            d["decode_seconds"] = s.decode_seconds;
            return d;
        })
        .def_property_readonly("end_reason", [](const sqllm::Generator &g) { return end_reason_name(g.end_reason()); },
                               "none, max_tokens, end_token or context_full (SQLLM_END_*).");

    py::class_<sqllm::QuantKvCache>(m, "QuantKvCache", "The KVQuant cache on its own, to check it against the reference.")
        .def(py::init([](const sqllm::Model &mdl, int n_ctx, int bits, const std::string &method) {
                 if (n_ctx < 1) throw py::value_error("n_ctx must be >= 1");
                 return std::make_unique<sqllm::QuantKvCache>(mdl.file(), n_ctx, bits, kv_method_of(method));
             }),
             py::arg("model"), py::arg("n_ctx"), py::arg("bits"), py::arg("method") = "nuq", py::keep_alive<1, 2>())
        .def_property_readonly("sink", &sqllm::QuantKvCache::sink)
        .def_property_readonly("online_ranges", &sqllm::QuantKvCache::online_ranges)
        .def("store", [](sqllm::QuantKvCache &c, int layer, int pos0, const F32Array &k, const F32Array &v) {
            if (k.ndim() != 2 || v.ndim() != 2 || k.shape(1) != c.channels() || v.shape(1) != c.channels() || k.shape(0) != v.shape(0))
                throw py::value_error("keys and values must both be [n, channels]");
            if (layer < 0 || layer >= c.n_layers() || pos0 < 0 || pos0 + k.shape(0) > c.n_ctx())
                throw py::value_error("layer or positions out of range");
            c.store(layer, pos0, int32_t(k.shape(0)), k.data(), v.data());
        }, py::arg("layer"), py::arg("pos0"), py::arg("keys"), py::arg("values"))
        .def("read", [](const sqllm::QuantKvCache &c, int layer, int pos) {
            // The dequantized key and value of a stored position, all heads: [channels] each.
            if (layer < 0 || layer >= c.n_layers() || pos < 0 || pos >= c.n_ctx()) throw py::value_error("layer or position out of range");
            F32Array k(c.channels()), v(c.channels());
            for (int h = 0; h < int(c.channels() / c.head_dim()); h++) {
                c.key(layer, pos, h, k.mutable_data() + h * c.head_dim());
                c.value(layer, pos, h, v.mutable_data() + h * c.head_dim());
            }
            return py::make_tuple(k, v);
        }, py::arg("layer"), py::arg("pos"))
        .def("bytes_used", &sqllm::QuantKvCache::bytes_used, py::arg("n_tokens"));

    m.def("sample", [](const F32Array &logits, const IdArray &history, float temperature, int top_k, float top_p, float min_p,
                       float repetition_penalty, int repetition_window, uint64_t seed, float presence_penalty, float frequency_penalty) {
        if (logits.ndim() != 1 || logits.size() == 0) throw py::value_error("logits must be a non-empty 1-D array");
        sqllm::Sampler sampler(sampler_params(temperature, top_k, top_p, min_p, repetition_penalty, repetition_window, seed,
                                              presence_penalty, frequency_penalty));
        return sampler.sample(logits.data(), int32_t(logits.size()), to_ids(history));
    }, py::arg("logits"), py::arg("history"), py::arg("temperature"), py::arg("top_k"), py::arg("top_p"),
       py::arg("min_p"), py::arg("repetition_penalty"), py::arg("repetition_window"), py::arg("seed"),
       py::arg("presence_penalty") = 0.0f, py::arg("frequency_penalty") = 0.0f);

    m.def("perplexity_windows", [](const std::vector<int32_t> &body, int window, int bos) {
        return sqllm::perplexity_windows(body, window, bos);
    }, py::arg("body"), py::arg("window"), py::arg("bos"), "The windows sqllm_text_nll scores (bos -1: none).");
}

}  // namespace sqllm_py
