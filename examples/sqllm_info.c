/* Load an .sqf file through the C API and print its configuration and metadata.
 *
 *     sqllm_info MODEL.sqf
 */
#include <stdio.h>

#include "sqllm/sqllm.h"

int main(int argc, char **argv) {
    sqllm_model *model = NULL;
    sqllm_load_params params = sqllm_load_params_default();
    sqllm_model_config cfg;
    sqllm_status st;
    size_t i;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.sqf\n", argv[0]);
        return 2;
    }
    params.verify_checksums = 1;
    st = sqllm_model_load(argv[1], &params, &model);
    if (st != SQLLM_OK) {
        fprintf(stderr, "error: %s: %s\n", sqllm_status_string(st), sqllm_last_error());
        return 1;
    }
    sqllm_model_get_config(model, &cfg);
    printf("%s: %u layers, hidden %u, heads %u/%u, vocab %u, context %u\n", cfg.family, cfg.num_layers,
           cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.vocab_size, cfg.context_length);
    for (i = 0; i < sqllm_model_meta_count(model); i++) {
        const char *key;
        sqllm_value_type type;
        uint64_t count;
        int64_t iv;
        double fv;
        const char *s;
        size_t n;
        sqllm_model_meta_key(model, i, &key, &type, &count);
        if (type == SQLLM_TYPE_STRING && sqllm_model_meta_string(model, key, &s, &n) == SQLLM_OK)
            printf("  %s = \"%.*s\"%s\n", key, (int)(n > 60 ? 60 : n), s, n > 60 ? "..." : "");
        else if (type == SQLLM_TYPE_ARRAY)
            printf("  %s = [%llu items]\n", key, (unsigned long long)count);
        else if (sqllm_model_meta_int(model, key, &iv) == SQLLM_OK)
            printf("  %s = %lld\n", key, (long long)iv);
        else if (sqllm_model_meta_float(model, key, &fv) == SQLLM_OK)
            printf("  %s = %g\n", key, fv);
    }
    printf("%zu tensors, %zu quantized linears\n", sqllm_model_tensor_count(model), sqllm_model_linear_count(model));
    for (i = 0; i < sqllm_model_linear_count(model); i++) {
        sqllm_linear_info L;
        sqllm_model_linear(model, i, &L);
        printf("  %s: %llux%llu, %u-bit, group %u, %llu sparse\n", L.name, (unsigned long long)L.rows,
               (unsigned long long)L.cols, L.bits, L.group_size, (unsigned long long)L.nnz);
    }
    sqllm_model_free(model);
    return 0;
}
