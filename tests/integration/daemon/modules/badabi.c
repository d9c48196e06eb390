/* Test module: a descriptor as a future girderd might define it (ABI 999); it must be refused. */
#include <stdint.h>

/* Only the first two fields are read before the ABI check; the rest is deliberately absent. */
struct future_module {
    uint32_t abi, size;
    const char *name;
};

__attribute__((visibility("default")))
const struct future_module girder_module_info = {999, sizeof(struct future_module), "badabi"};
