/* note_fuzz.c: libFuzzer target for the signed-note and checkpoint parsers. The same entry point
 * replays fuzz/corpus/note/ in the unit tests, so `meson test` runs it without clang. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/note.h"
#include "fuzz.h"

/* accepted: the note verified, or the input is a cosigned note or a checkpoint body */
int fuzz_verdict;

/* The keys the corpus notes are signed with, so valid inputs reach the signature checks:
 * PeterNeumann and EnochRoot are the golang.org/x/mod/sumdb/note test keys (BSD-3-Clause);
 * witness.example/fuzz is a cosignature key made for this corpus (its private half discarded). */
static const char *const fuzz_vkeys[] = {
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
        "witness.example/fuzz+059ff63d+BFTju7WhDG0vFPzLRp5EDFVxBB8SDJ7woLbLPcynfZx/",
};

/* What the last call found, for the corpus replay test (0 = note verified, bit 1 = cosigned,
 * bit 2 = the input itself is a checkpoint body). */
int note_fuzz_last_result;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct note_verifier *verifiers[3];
        static int loaded;
        struct note_verified res[3];
        int result = 0;
        char *body = NULL, *origin = NULL;
        uint64_t tree_size, ts;
        merkle_hash root;

        if (!loaded) {
                for (size_t i = 0; i < 3; i++)
                        if (note_verifier_from_vkey(fuzz_vkeys[i], &verifiers[i]) < 0)
                                abort();
                loaded = 1;
        }

        if (note_open((const char *) data, size, verifiers, 3, &body, res) == 0) {
                result |= 1;
                /* a verified body is a valid note text, and parses (or not) as a checkpoint */
                if (!note_text_is_valid(body, strlen(body)))
                        abort();
                if (checkpoint_parse(body, strlen(body), &origin, &tree_size, &root) == 0) {
                        if (!note_name_is_valid(origin))
                                abort();
                        free(origin);
                        origin = NULL;
                }
                free(body);
        }
        if (cosignature_verify(verifiers[2], (const char *) data, size, &ts) == 0) {
                if (ts > INT64_MAX)
                        abort();
                result |= 2;
        }
        if (checkpoint_parse((const char *) data, size, &origin, &tree_size, &root) == 0) {
                result |= 4;
                /* what parses must format back to the same bytes when it has no extension lines */
                char *again = NULL;
                if (checkpoint_format(origin, tree_size, &root, NULL, 0, &again) == 0) {
                        size_t l = strlen(again);
                        if (l > size || memcmp(again, data, l) != 0)
                                abort();
                        free(again);
                }
                free(origin);
        }
        note_fuzz_last_result = result;
        fuzz_verdict = result != 0;
        return 0;
}
