/* Compiled as strict C99 with -pedantic -Werror: the public header must stay plain C. */
#include "sqllm/sqllm.h"

int sqllm_header_c99_check(void);
int sqllm_header_c99_check(void) {
    sqllm_load_params p;
    p.verify_checksums = 1;
    return (int)sizeof(sqllm_model_config) + p.verify_checksums + (int)SQLLM_ERR_FORMAT;
}
