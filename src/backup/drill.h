/* drill.h: the document check of `coffre backup drill`: every document of a restored data
 * directory is decrypted with the restored keyring and compared with the size and SHA-256 its
 * metadata row records. Offline: no server, nothing but the files. */
#pragma once

#include <stdint.h>

#include "macro.h"

struct backup_drill_result {
        uint64_t documents, bytes;
        uint64_t bad; /* missing object, missing key, failed authentication, other hash */
};

/* report(id, what) for each bad document. -EKEYREJECTED when the master key does not open the
 * restored keyring. */
int backup_drill_check(const char *dir, const char *master_key_file, void (*report)(const char *id, const char *what,
                                                                                   void *ud),
                       void *ud, struct backup_drill_result *ret) _warn_unused_;
