/* hex.h: lower-case hex and base64 (standard alphabet, padded) encoding. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* out must hold 2*n+1 bytes. */
void hex_encode(const uint8_t *p, size_t n, char *out);
/* Decodes exactly n bytes from 2*n hex digits; -EINVAL on anything else. */
int hex_decode(const char *s, uint8_t *out, size_t n) _warn_unused_;
/* Standard base64 with padding; returns malloc'd string or NULL. */
char *base64_encode(const uint8_t *p, size_t n);
/* Strict standard base64 decode; *ret is malloc'd. -EINVAL on bad input. */
int base64_decode(const char *s, size_t slen, uint8_t **ret, size_t *ret_len) _warn_unused_;
