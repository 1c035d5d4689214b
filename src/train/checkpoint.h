/* Checkpoints: safetensors files holding the parameters and BatchNorm buffers under PyTorch's names, the
 * AdamW moments as optim.exp_avg.<name> / optim.exp_avg_sq.<name>, and metadata "config" (every setting,
 * JSON), "position" (epoch, batch, step, running metrics, JSON) and "rng". Written atomically, with a
 * "checksum" metadata entry (CRC-32 of every other byte; see incv3_st_writer_checksum). */
#ifndef INCV3_CHECKPOINT_H
#define INCV3_CHECKPOINT_H

#include "incv3/graph.h"
#include "incv3/train.h"

/* opt may be NULL (a weights-only file such as model.safetensors). */
int incv3_checkpoint_save(const char *path, incv3_graph *g, incv3_adamw *opt, const char *config_json,
                          const char *position_json, incv3_error *err);

/* Loads every parameter and buffer of g (and the moments and step count into opt when not NULL) from
 * path; tensors of other names (e.g. PyTorch's num_batches_tracked) are ignored. A file whose checksum
 * does not match ("...: checksum mismatch: the file is damaged ...") or that is truncated is refused
 * before g is touched; a file without a checksum (a PyTorch state_dict) loads unchecked. *config_json and
 * *position_json receive malloc'd copies of the metadata (NULL where absent) when the pointers are not
 * NULL. */
int incv3_checkpoint_load(const char *path, incv3_graph *g, incv3_adamw *opt, char **config_json,
                          char **position_json, incv3_error *err);

#endif
