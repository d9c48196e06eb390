/* girder_version(): the version of the libraries a program runs with. */
#include <girder/version.h>

const char *girder_version(void)
{
    return GIRDER_VERSION_STRING;
}
