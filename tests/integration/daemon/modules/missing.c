/* Test module: calls a function no library defines; dlopen must refuse it, naming the symbol. */
#include <girder/module.h>

extern int girder_test_no_such_function(void);

static int uses_missing(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    *res = term_int(girder_test_no_such_function());
    return DIST_RETURN;
}

static const girder_export exports[] = {{"uses_missing", 0, uses_missing, NULL}};

GIRDER_MODULE(.name = "missing", .version = "0.1.0", .exports = exports, .nexports = 1);
