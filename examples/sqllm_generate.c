/* Generate text with an .sqf model through the C API, streaming tokens as they come.
 *
 *     sqllm_generate MODEL.sqf "Once upon a time" [N_TOKENS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqllm/sqllm.h"

static int print_piece(int32_t token, const char *piece, size_t length, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, length, stdout);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    sqllm_model *model = NULL;
    sqllm_context *ctx = NULL;
    sqllm_sampler_params sampling = sqllm_sampler_params_default();
    sqllm_generate_stats stats;
    sqllm_status st;
    int32_t n_tokens = argc > 3 ? atoi(argv[3]) : 64;

    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.sqf PROMPT [N_TOKENS]\n", argv[0]);
        return 2;
    }
    st = sqllm_model_load(argv[1], NULL, &model);
    if (st == SQLLM_OK) st = sqllm_context_create(model, NULL, &ctx);
    if (st == SQLLM_OK) {
        sampling.temperature = 0.0f; /* greedy: the same text on every machine */
        fputs(argv[2], stdout);
        st = sqllm_generate(ctx, argv[2], strlen(argv[2]), n_tokens, &sampling, print_piece, NULL, &stats);
        printf("\n");
        fflush(stdout);
    }
    if (st != SQLLM_OK) {
        fprintf(stderr, "error: %s: %s\n", sqllm_status_string(st), sqllm_last_error());
    } else {
        fprintf(stderr, "prompt %d tokens in %.3f s, generated %d tokens in %.3f s\n", stats.prompt_tokens,
                stats.prompt_seconds, stats.generated_tokens, stats.decode_seconds);
    }
    sqllm_context_free(ctx);
    sqllm_model_free(model);
    return st == SQLLM_OK ? 0 : 1;
}
