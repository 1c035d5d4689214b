/* libFuzzer harness: incv3_checkpoint_load into a small fixed graph (conv, BatchNorm, ReLU, pooling,
 * Linear: every kind of parameter and buffer a checkpoint holds) with its AdamW state, so the moments,
 * optim.steps and the config/position metadata are all read, and a loaded optimizer takes one step. The graph is built once per process. */
#include "fuzz_common.h"

#include "incv3/graph.h"
#include "incv3/train.h"
#include "train/checkpoint.h"

#include "fuzz_checkpoint_graph.h"

static incv3_graph *graph;
static incv3_adamw *opt;

static void free_graph(void)
{
    incv3_adamw_free(opt);
    incv3_graph_free(graph);
    opt = NULL;
    graph = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    incv3_error err;
    if (!graph) {
        if (fuzz_checkpoint_graph(&graph, &opt, &err)) {
            fprintf(stderr, "fuzz_checkpoint: %s\n", err.msg);
            abort();
        }
        atexit(free_graph);
    }
    const char *path = fuzz_input_path(data, size);
    if (!path)
        return 0;
    char *config = NULL, *position = NULL;
    if (incv3_checkpoint_load(path, graph, opt, &config, &position, &err) == 0) {
        if (config)
            fuzz_touch(config, strlen(config));
        if (position)
            fuzz_touch(position, strlen(position));
        /* What a resumed run does next: one optimizer step from the loaded step count (no parameter has a
         * gradient here, so only the count moves). */
        incv3_adamw_step(opt, graph);
    }
    free(config);
    free(position);
    /* Weights only, as eval and predict load a model file. */
    incv3_checkpoint_load(path, graph, NULL, NULL, NULL, &err);
    return 0;
}
