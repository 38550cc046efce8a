/* time_fuzz.c: fuzz target for rfc3339_parse. Property: an accepted time, formatted with
 * rfc3339_format and parsed again, gives the same milliseconds. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "timeutil.h"

int fuzz_verdict;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char s[64], again[RFC3339_MAX];
        int64_t ms, ms2;

        fuzz_verdict = 0;
        /* the parser takes a C string: no valid time is that long or holds a NUL */
        if (size >= sizeof s || memchr(data, 0, size))
                return 0;
        memcpy(s, data, size);
        s[size] = 0;
        if (rfc3339_parse(s, &ms) < 0)
                return 0;
        fuzz_verdict = 1;
        rfc3339_format(ms, again);
        if (rfc3339_parse(again, &ms2) < 0 || ms2 != ms)
                abort();
        return 0;
}
