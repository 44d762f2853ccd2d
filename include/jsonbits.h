/* jsonbits.h - bit steps shared by the 64-byte block scanners of JSON text (jsonseg.c's
 * segmenter and detect.c's prefilter): which bytes a backslash escapes, and which bytes
 * lie inside strings (simdjson's technique). */
#ifndef SLUICE_JSONBITS_H
#define SLUICE_JSONBITS_H

#include <stdint.h>

/* The bytes escaped by a backslash, given the backslashes <bs> of a block and *carry (1 when
 * its first byte is escaped by the previous block's last backslash; set for the next block),
 * reading every backslash as if in a string. An odd run escapes the byte after it; the
 * subtraction tells runs that start on even bits from those that start on odd ones
 * (simdjson's json_escape_scanner). */
static inline uint64_t escaped_bytes(uint64_t bs, int *carry)
{
	const uint64_t odd = 0xAAAAAAAAAAAAAAAAull;
	uint64_t in = (uint64_t)*carry, pot, code;

	if (!bs) {
		*carry = 0;
		return in;
	}
	pot = bs & ~in; /* a backslash escaped by the previous block escapes nothing */
	code = (((pot << 1) | odd) - pot) ^ odd;
	*carry = (int)((code & bs) >> 63); /* the block's last byte escapes the next */
	return code ^ (bs | in);
}

/* Bit i set when an odd number of bits 0..i of <x> are set. */
static inline uint64_t prefix_xor(uint64_t x)
{
	x ^= x << 1;
	x ^= x << 2;
	x ^= x << 4;
	x ^= x << 8;
	x ^= x << 16;
	x ^= x << 32;
	return x;
}

#endif
