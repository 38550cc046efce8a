/* keyload.h: the one way the signer loads a private key: a PEM file (a regular file of ours, mode
 * 0600 or stricter, unencrypted) or a key on a PKCS#11 token named by a URI
 * (pkcs11:token=...;object=...?pin-source=file:...&module-path=...), through libp11. The result
 * is an EVP_PKEY that CMS_sign, TS_RESP_CTX and EVP_DigestSign use; a token key never leaves the
 * token: signing happens inside it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "macro.h"

struct loaded_key;

/* spec: a path (relative paths are taken from base_dir when it is not NULL) or a pkcs11: URI.
 * -EPERM for a file others may read or that is not ours, or a PIN file likewise; -EINVAL with a
 * logged reason for a bad URI or a file that is no unencrypted PEM key; -ENOENT when the token or
 * the object is not there; -EACCES when the token refuses the PIN. Logs one line on failure. */
int keyload_open(const char *spec, const char *base_dir, struct loaded_key **ret) _warn_unused_;
/* From the text of a key file already read (by the caller, who checked the file's owner and mode
 * and wipes the text): an unencrypted PEM private key, or one line holding a pkcs11: URI (a key
 * file that names a key on a token), unless allow_token is false (-EOPNOTSUPP then). -EINVAL
 * for anything else. name is for messages. */
int keyload_from_text(const char *text, size_t len, const char *name, bool allow_token, struct loaded_key **ret)
        _warn_unused_;
/* Hands the key over (one reference) and frees lk; a token key keeps its module loaded for the
 * life of the process. */
EVP_PKEY *keyload_take(struct loaded_key *lk);
/* The key (owned by lk: valid until keyload_free). */
EVP_PKEY *keyload_pkey(const struct loaded_key *lk);
/* true when the key lives on a token. */
int keyload_is_token(const struct loaded_key *lk);
void keyload_free(struct loaded_key *lk);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct loaded_key *, keyload_free);
