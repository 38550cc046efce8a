/* fuzz.h: what every fuzz target shares: the libFuzzer entry point and the verdict that the corpus
 * replay checks against the seed's file name ("ok-*" must be accepted, "bad-*" refused). */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Set by each target on every call: 1 when the parser accepted the input, 0 when it refused it. */
extern int fuzz_verdict;

/* Cap on one input, for the replay and as -max_len for libFuzzer runs. */
#define FUZZ_MAX_INPUT ((size_t) 1024 * 1024)
