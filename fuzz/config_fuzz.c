/* config_fuzz.c: fuzz target for the settings file parser (vault_config_load, inih underneath).
 * The input is written to a memfd and read back through /proc/self/fd/N, so no file is left behind.
 * Properties: a bad file is -EINVAL with nothing read past the caps; a good one has every string
 * NUL-terminated within its field, and writes back (vault_config_write) to a file that loads to
 * the same settings. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"
#include "fileio.h"
#include "fuzz.h"
#include "log.h"

int fuzz_verdict;

static int load_bytes(const uint8_t *data, size_t size, struct vault_config *c) {
        char path[64];
        int fd = memfd_create("coffre-config-fuzz", MFD_CLOEXEC);
        if (fd < 0)
                abort();
        if (write_all(fd, data, size) < 0)
                abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        int r = vault_config_load(path, c);
        close(fd);
        return r;
}

static void check_terminated(const struct vault_config *c) {
        if (!memchr(c->vault_id, 0, sizeof c->vault_id) || !memchr(c->listen, 0, sizeof c->listen) ||
            !memchr(c->tls_cert, 0, sizeof c->tls_cert) || !memchr(c->tls_key, 0, sizeof c->tls_key) ||
            !memchr(c->master_key, 0, sizeof c->master_key) || !memchr(c->audit_origin, 0, sizeof c->audit_origin) ||
            !memchr(c->default_class, 0, sizeof c->default_class) || c->n_witness > VAULT_MAX_WITNESSES)
                abort();
        for (size_t i = 0; i < c->n_witness; i++)
                if (!memchr(c->witness[i], 0, sizeof c->witness[i]))
                        abort();
}

/* Field by field: padding and bytes past a string's NUL may differ. */
static bool config_equal(const struct vault_config *a, const struct vault_config *b) {
        if (strcmp(a->vault_id, b->vault_id) || strcmp(a->listen, b->listen) || strcmp(a->tls_cert, b->tls_cert) ||
            strcmp(a->tls_key, b->tls_key) || strcmp(a->master_key, b->master_key) ||
            strcmp(a->audit_origin, b->audit_origin) || strcmp(a->default_class, b->default_class) ||
            a->max_body != b->max_body || a->max_connections != b->max_connections ||
            a->max_connections_per_ip != b->max_connections_per_ip || a->idle_timeout != b->idle_timeout ||
            a->shutdown_timeout != b->shutdown_timeout || a->n_witness != b->n_witness)
                return false;
        for (size_t i = 0; i < a->n_witness; i++)
                if (strcmp(a->witness[i], b->witness[i]))
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static int quiet;
        struct vault_config c, c2;
        char dir[] = "/tmp/coffre-config-fuzz-XXXXXX";

        if (!quiet) {
                log_set_level(LOG_LEVEL_ERROR); /* unknown settings log warnings by the thousand */
                quiet = 1;
        }
        fuzz_verdict = 0;
        int r = load_bytes(data, size, &c);
        if (r < 0) {
                if (r != -EINVAL)
                        abort();
                return 0;
        }
        fuzz_verdict = 1;
        check_terminated(&c);
        /* what loads writes back to a file that loads to the same settings */
        if (!mkdtemp(dir))
                abort();
        _cleanup_free_ char *p = path_join(dir, "coffre.conf");
        if (!p || vault_config_write(p, &c) < 0)
                abort();
        r = vault_config_load(p, &c2);
        rm_rf(dir);
        if (r < 0 || !config_equal(&c, &c2))
                abort();
        return 0;
}
