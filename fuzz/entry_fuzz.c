/* entry_fuzz.c: fuzz target for the strict audit entry parser (audit_entry_parse).
 * Properties: whatever parses serialises back (audit_entry_build) to the very same bytes, and its
 * sealed details either open under the corpus key or fail cleanly with -EBADMSG. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit/entry.h"
#include "fuzz.h"

int fuzz_verdict;

/* The key the corpus' sealed details were made with (fuzz/make_corpus.py): 32 bytes 0x01..0x20. */
static const uint8_t fuzz_details_key[AUDIT_ENTRY_KEY_SIZE] = {
        1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct audit_entry e = {};
        _cleanup_buf_ struct buf again;
        int r;

        fuzz_verdict = 0;
        buf_init(&again, AUDIT_ENTRY_MAX);
        r = audit_entry_parse((const char *) data, size, &e);
        if (r < 0) {
                if (r != -EBADMSG && r != -ENOMEM)
                        abort();
                return 0;
        }
        fuzz_verdict = 1;
        if (audit_entry_build(&e, NULL, NULL, &again) < 0)
                abort(); /* the parser accepted what the builder refuses */
        if (again.len != size || memcmp(again.data, data, size) != 0)
                abort(); /* not canonical: two spellings of one entry */
        if (e.details) {
                struct buf plain;
                buf_init(&plain, AUDIT_ENTRY_DETAILS_PLAIN_MAX + 1);
                r = audit_entry_open_details(&e, fuzz_details_key, &plain);
                if (r < 0 && r != -EBADMSG)
                        abort();
                buf_free_secure(&plain);
        } else {
                struct buf plain;
                buf_init(&plain, 0);
                if (audit_entry_open_details(&e, fuzz_details_key, &plain) != -ENOENT)
                        abort();
                buf_free(&plain);
        }
        audit_entry_clear(&e);
        return 0;
}
