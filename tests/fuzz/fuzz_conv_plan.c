/* libFuzzer harness: the convolution plan file reader (conv_plan_read_file, what --resume loads from
 * OUT/conv-plan.json), merging into an empty plan and into one that already holds an entry. */
#include "fuzz_common.h"

#include "graph/conv_plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_path(data, size);
    if (!path)
        return 0;
    incv3_error err;
    incv3_conv_plan p = {0};
    if (conv_plan_read_file(&p, path, &err) == 0) {
        for (size_t i = 0; i < p.n; i++) {
            const char *k = conv_plan_get(&p, p.entries[i].key);
            if (!k || !incv3_conv_kernel_by_name(k))
                abort();
        }
    }
    conv_plan_clear(&p);
    size_t nk;
    const incv3_conv_kernel *table = incv3_conv_kernel_table(&nk);
    if (nk && conv_plan_put(&p, "auto fwd scalar c1 h8 w8 k4 3x3 s1x1 p1,1,1,1 t1", table[0].name) == 0)
        conv_plan_read_file(&p, path, &err);
    conv_plan_clear(&p);
    return 0;
}
