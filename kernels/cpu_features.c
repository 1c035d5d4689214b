#include "registry.h"

#include <stdio.h>
#include <string.h>

#include "incv3_config.h"

int incv3_cpu_has_avx2_fma(void)
{
#if INCV3_HAVE_X86_64 && (defined(__GNUC__) || defined(__clang__))
    /* __builtin_cpu_supports caches cpuid itself, so no state of ours is needed. */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

void incv3_cpu_model_name(char *buf, size_t len)
{
    snprintf(buf, len, "%s", INCV3_HOST_CPU);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    /* x86 says "model name"; some AArch64 kernels say nothing, others "Model" or "Hardware". */
    for (char line[512]; fgets(line, sizeof line, f);) {
        const char *colon = strchr(line, ':');
        if (colon && (strncmp(line, "model name", 10) == 0 || strncmp(line, "Model\t", 6) == 0 ||
                      strncmp(line, "Hardware", 8) == 0)) {
            colon += colon[1] == ' ' ? 2 : 1;
            snprintf(buf, len, "%s", colon);
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
}

static const char *const isa_names[INCV3_ISA_COUNT] = {"scalar", "avx2", "neon"};

const char *incv3_isa_name(incv3_isa isa)
{
    return (unsigned)isa < INCV3_ISA_COUNT ? isa_names[isa] : "?";
}

int incv3_isa_from_name(const char *name)
{
    for (int i = 0; i < INCV3_ISA_COUNT; i++)
        if (strcmp(name, isa_names[i]) == 0)
            return i;
    return -1;
}

static int isa_compiled_in(incv3_isa isa)
{
    size_t n;
    const incv3_conv_kernel *t = incv3_conv_kernel_table(&n);
    for (size_t i = 0; i < n; i++)
        if (t[i].isa == isa)
            return 1;
    return 0;
}

int incv3_isa_available(incv3_isa isa)
{
    switch (isa) {
    case INCV3_ISA_SCALAR:
        return 1;
    case INCV3_ISA_AVX2:
        return isa_compiled_in(isa) && incv3_cpu_has_avx2_fma();
    case INCV3_ISA_NEON:
        return isa_compiled_in(isa) && INCV3_HAVE_AARCH64; /* ASIMD is baseline on AArch64 */
    default:
        return 0;
    }
}

incv3_isa incv3_isa_best(void)
{
    if (incv3_isa_available(INCV3_ISA_AVX2))
        return INCV3_ISA_AVX2;
    if (incv3_isa_available(INCV3_ISA_NEON))
        return INCV3_ISA_NEON;
    return INCV3_ISA_SCALAR;
}
