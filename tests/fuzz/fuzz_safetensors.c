/* libFuzzer harness: incv3_st_open on arbitrary bytes, then every accessor on what it accepted. */
#include "fuzz_common.h"

#include "incv3/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_path(data, size);
    if (!path)
        return 0;
    incv3_error err;
    incv3_st_file *f = incv3_st_open(path, &err);
    if (!f)
        return 0;
    size_t n = incv3_st_count(f);
    for (size_t i = 0; i < n; i++) {
        const incv3_st_tensor *t = incv3_st_at(f, i);
        if (!t || !t->name || !t->data || t->ndim < 0 || t->ndim > INCV3_ST_MAX_DIMS)
            abort();
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= (size_t)t->shape[d];
        if (numel != t->numel)
            abort();
        fuzz_touch(t->data, t->numel * (t->dtype == INCV3_I64 ? 8 : 4));
        if (incv3_st_find(f, t->name) != t)
            abort();
        incv3_st_require(f, t->name, INCV3_F32, 0, &err);
        incv3_st_require(f, t->name, INCV3_I64, t->numel + 1, &err);
    }
    if (incv3_st_at(f, n) != NULL)
        abort();
    incv3_st_find(f, "");
    incv3_st_find(f, "__metadata__");
    const char *keys[] = {"config", "position", "optim.steps", "rng", ""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = incv3_st_metadata(f, keys[i]);
        if (v)
            fuzz_touch(v, strlen(v));
    }
    incv3_st_close(f);
    return 0;
}
