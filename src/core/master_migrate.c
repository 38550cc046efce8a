/* master_migrate.c: `coffre key migrate-master`: moves the master key from DATA/keys/master.key to
 * a PKCS#11 token. Steps, each safe to interrupt (a rerun picks up where it stopped):
 *  1. the token gets its AES key (made there) and its HMAC key (the file key's value, imported:
 *     the audit record MAC key and every other derived key stay the same);
 *  2. every KEK is rewrapped under the token's AES key, and keyring.db names the new key, in one
 *     durable transaction, read back before going on;
 *  3. coffre.conf's [keys] master becomes the URI (atomic rename);
 *  4. the vault is opened the way the server will (the URI from coffre.conf) and every KEK unwraps;
 *  5. only then is keys/master.key removed.
 * The server must be stopped: the audit log's lock is held throughout. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <sodium.h>

#include "crypto/keyring.h"
#include "crypto/p11_uri.h"
#include "fileio.h"
#include "log.h"
#include "vault.h"

/* Replaces the value of [keys] master in the settings file's text, keeping every other line. */
static int conf_set_master(const char *conf, const char *uri, char *const *paths, size_t n_paths) {
        struct buf in;
        int r = read_file(conf, 1 << 20, &in);
        if (r < 0)
                return r;
        _cleanup_buf_ struct buf out = {};
        buf_init(&out, 0);
        const char *p = (const char *) in.data, *end = p + in.len;
        bool in_keys = false, done = false;
        while (p < end && r >= 0) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) + 1 : (size_t) (end - p);
                if (n > 0 && p[0] == '[')
                        in_keys = n >= 6 && memcmp(p, "[keys]", 6) == 0;
                if (in_keys && !done && n >= 6 && memcmp(p, "master", 6) == 0 && (p[6] == ' ' || p[6] == '=')) {
                        r = buf_printf(&out, "master = %s\n", uri);
                        for (size_t i = 0; r >= 0 && i < n_paths; i++)
                                r = buf_printf(&out, "pkcs11_path = %s\n", paths[i]);
                        done = true;
                } else
                        r = buf_append(&out, p, n);
                p += n;
        }
        buf_free(&in);
        if (r < 0)
                return r;
        if (!done)
                return log_error_errno(-EINVAL, "%s has no [keys] master line to change", conf);
        return write_file_atomic(conf, out.data, out.len, 0600, 0);
}

/* Step 4: the vault's keyring opens under the configured master key and every KEK unwraps. */
static int check_configured(const char *dir, const char *kr) {
        _cleanup_free_ char *conf = path_join(dir, "coffre.conf");
        struct vault_config c;
        struct master_key *m = NULL;
        if (!conf)
                return -ENOMEM;
        int r = vault_config_load(conf, &c);
        if (r < 0)
                return r;
        if (!p11_uri_is(c.master_key))
                return log_error_errno(-EIO, "coffre.conf does not name the token after the change");
        r = master_key_load(c.master_key, dir, &m);
        if (r < 0)
                return r;
        _cleanup_(keyring_freep) struct keyring *k = NULL;
        r = keyring_open(kr, false, m, &k);
        if (r < 0)
                return log_error_errno(r, "the keyring does not open under the token's key: %s", strerror(-r));
        /* rewrapping onto the same key checks that every row opens under it, and changes nothing */
        struct master_key *again = NULL;
        r = master_key_load(c.master_key, dir, &again);
        if (r < 0)
                return r;
        size_t rewrapped = 0;
        r = keyring_change_master(k, again, &rewrapped);
        if (r >= 0 && rewrapped != 0)
                r = -EIO;
        if (r < 0)
                return log_error_errno(r, "a key encryption key does not open under the token's key");
        return 0;
}

int vault_migrate_master(const char *dir, const char *uri, char *const *pkcs11_paths, size_t n_pkcs11_paths) {
        struct vault_config c;
        struct p11_uri u;
        const char *why;
        int r;

        if (p11_uri_parse(uri, &u, &why) < 0)
                return log_error_errno(-EINVAL, "--to: %s", why);
        if (strlen(uri) >= sizeof c.master_key || strchr(uri, '#') || strstr(uri, " ;") || strstr(uri, "\t;"))
                return log_error_errno(-EINVAL,
                                       "--to: the URI cannot be written to coffre.conf (too long, '#' or ' ;')");
        if (n_pkcs11_paths > VAULT_MAX_PKCS11_PATHS)
                return log_error_errno(-EINVAL, "at most %d --pkcs11-path", VAULT_MAX_PKCS11_PATHS);
        for (size_t i = 0; i < n_pkcs11_paths; i++)
                if (pkcs11_paths[i][0] != '/' || strlen(pkcs11_paths[i]) >= sizeof c.pkcs11_path[0] ||
                    strpbrk(pkcs11_paths[i], ";#\n"))
                        return log_error_errno(-EINVAL, "--pkcs11-path must be an absolute path without ';' or '#'");
        _cleanup_free_ char *conf = path_join(dir, "coffre.conf");
        _cleanup_free_ char *kr = path_join(dir, "keyring.db");
        _cleanup_free_ char *lock = path_join(dir, "audit/lock");
        if (!conf || !kr || !lock)
                return -ENOMEM;
        r = vault_config_load(conf, &c);
        if (r == -ENOENT)
                return log_error_errno(r, "%s is not a coffre vault (no coffre.conf)", dir);
        if (r < 0)
                return r;
        /* the lock the server holds while it runs */
        _cleanup_close_ int lfd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (lfd < 0)
                return log_error_errno(negative_errno(), "cannot open %s", lock);
        if (flock(lfd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : negative_errno();

        _cleanup_free_ char *file = NULL;
        if (p11_uri_is(c.master_key)) {
                if (strcmp(c.master_key, uri) != 0)
                        return log_error_errno(-EINVAL, "the master key is already on a PKCS#11 token (another URI)");
                /* interrupted after step 3: finish steps 4 and 5 */
                file = path_join(dir, "keys/master.key");
                if (!file)
                        return -ENOMEM;
                if (access(file, F_OK) < 0 && errno == ENOENT) {
                        log_info("the master key is already on the token");
                        return check_configured(dir, kr);
                }
        } else {
                file = path_join(dir, c.master_key);
                if (!file)
                        return -ENOMEM;
                struct master_key *old = NULL, *to = NULL;
                r = master_key_load_file(file, &old);
                if (r < 0)
                        return log_error_errno(r, "cannot load the master key %s: %s", file, strerror(-r));
                /* step 1 (and a check: the token derives what the file derives) */
                r = master_key_load_pkcs11(uri, true, old, &to);
                if (r >= 0) {
                        uint8_t a[KEYRING_KEY_SIZE], b[KEYRING_KEY_SIZE];
                        r = master_key_derive(old, "audit record mac", a);
                        if (r >= 0)
                                r = master_key_derive(to, "audit record mac", b);
                        if (r >= 0 && sodium_memcmp(a, b, sizeof a) != 0)
                                r = log_error_errno(-EIO, "the token's HMAC key derives other keys than the file");
                        sodium_memzero(a, sizeof a);
                        sodium_memzero(b, sizeof b);
                }
                if (r < 0) {
                        master_key_free(old);
                        master_key_free(to);
                        return r;
                }
                /* step 2; a run interrupted after it finds keyring.db already naming the token's key */
                _cleanup_(keyring_freep) struct keyring *k = NULL;
                r = keyring_open(kr, false, old, &k); /* takes old */
                if (r == -EBADMSG) {
                        log_info("keyring.db already names another master key: checking it is the token's");
                        struct master_key *probe = NULL;
                        master_key_free(TAKE_PTR(to)); /* one module instance at a time */
                        r = master_key_load_pkcs11(uri, false, NULL, &probe);
                        if (r < 0)
                                return r;
                        r = keyring_open(kr, false, probe, &k);
                        if (r < 0)
                                return log_error_errno(r, "keyring.db opens under neither the file nor the token");
                        r = master_key_load_pkcs11(uri, false, NULL, &to);
                        if (r < 0)
                                return r;
                } else if (r < 0) {
                        master_key_free(to);
                        return log_error_errno(r, "cannot open the keyring: %s", strerror(-r));
                }
                size_t moved = 0, total = 0;
                r = keyring_change_master(k, to, &moved); /* takes to */
                if (r < 0)
                        return log_error_errno(r, "cannot rewrap the organisation keys: %s", strerror(-r));
                if (keyring_kek_count(k, &total) < 0)
                        total = moved;
                log_info("rewrapped %zu of %zu organisation key versions under the token's key", moved, total);
                keyring_free(TAKE_PTR(k));
                /* step 3 */
                r = conf_set_master(conf, uri, pkcs11_paths, n_pkcs11_paths);
                if (r < 0)
                        return log_error_errno(r, "cannot update %s: %s", conf, strerror(-r));
        }
        /* step 4 */
        r = check_configured(dir, kr);
        if (r < 0)
                return r;
        /* step 5: overwritten first, for file systems that rewrite in place */
        _cleanup_close_ int wfd = open(file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (wfd >= 0) {
                static const uint8_t zero[KEYRING_KEY_SIZE];
                if (write_all(wfd, zero, sizeof zero) < 0 || fsync(wfd) < 0)
                        log_warn("could not overwrite %s before removing it", file);
        }
        if (unlink(file) < 0 && errno != ENOENT)
                return log_error_errno(negative_errno(), "cannot remove %s", file);
        r = fsync_parent(file);
        if (r < 0)
                return r;
        log_info("the master key is on the PKCS#11 token; %s is removed", file);
        return 0;
}
