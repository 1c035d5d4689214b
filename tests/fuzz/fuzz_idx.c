/* libFuzzer harness: the IDX readers (plain and gzip) on arbitrary bytes, as images and as labels. */
#include "fuzz_common.h"

#include "incv3/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_path(data, size);
    if (!path)
        return 0;
    incv3_error err;
    incv3_idx_images im;
    if (incv3_idx_read_images(path, &im, &err) == 0) {
        if (!im.data || im.count == 0 || im.rows < 1 || im.cols < 1)
            abort();
        fuzz_touch(im.data, im.count * (size_t)im.rows * (size_t)im.cols);
    }
    /* 256 classes accept every byte; only a file that passes is read again with MNIST's 10, whose range
     * check is the one thing left to fail (this keeps to two reads per input). */
    incv3_idx_labels lb;
    if (incv3_idx_read_labels(path, 256, &lb, &err) == 0) {
        if (!lb.data || lb.count == 0 || lb.num_classes != 256)
            abort();
        fuzz_touch(lb.data, lb.count);
        int small = 1;
        for (size_t i = 0; i < lb.count; i++)
            small &= lb.data[i] < 10;
        incv3_idx_labels_free(&lb);
        if ((incv3_idx_read_labels(path, 10, &lb, &err) == 0) != small)
            abort();
        incv3_idx_check_pair(&im, "images", &lb, "labels", &err);
        incv3_idx_labels_free(&lb);
    }
    incv3_idx_images_free(&im);
    return 0;
}
