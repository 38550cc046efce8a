/* asic_fuzz.c: fuzz target for the evidence bundle verifier (seal/asic_verify.c): ZIP structure,
 * CMS and time-stamp parsing, audit.json and inclusion proofs, on arbitrary bytes given as a file
 * (the verifier reads with pread). Trust is what the bundle carries (no --ca, no --log-key).
 * Property: it accepts or refuses, never crashes, and never reads past the input. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "seal/asic_verify.h"

int fuzz_verdict;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_verdict = 0;
        int fd = memfd_create("asic", MFD_CLOEXEC);
        if (fd < 0)
                return 0;
        size_t done = 0;
        while (done < size) {
                ssize_t k = write(fd, data + done, size - done);
                if (k <= 0) {
                        close(fd);
                        return 0;
                }
                done += (size_t) k;
        }
        struct asic_verify_options o = {};
        char why[256];
        fuzz_verdict = asic_verify_fd(fd, &o, NULL, why, sizeof why) == 0;
        close(fd);
        return 0;
}
