/* utf8.h: strict UTF-8 decoding, shared by every parser that checks text. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Decodes one UTF-8 sequence at s[0..len) (len >= 1). Returns its length (1 to 4) and the code
 * point in *ret_cp, or 0 when it is not valid UTF-8: overlong forms, surrogates, code points past
 * U+10FFFF and sequences cut short all count as invalid. */
size_t utf8_next(const uint8_t *s, size_t len, uint32_t *ret_cp);
