/*
 * bits.h - counting set bits.
 *
 * The library is built for baseline x86-64, which has no popcnt
 * instruction: __builtin_popcountll then calls libgcc's __popcountdi2,
 * 1.5% of the churn's profile when a free counted a run's free blocks.
 * This is the same count in a dozen inline instructions (or the
 * instruction itself when the target has it).
 */
#ifndef MEMS_BITS_H
#define MEMS_BITS_H
#include <stdint.h>

static inline unsigned bits_count(uint64_t x)
{
#if defined(__POPCNT__) || !(defined(__x86_64__) || defined(__i386__))
	return (unsigned)__builtin_popcountll(x);
#else
	x -= (x >> 1) & 0x5555555555555555ull;
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

#endif
