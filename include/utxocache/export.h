/* SPDX-License-Identifier: MIT */
/*
 * UC_EXPORT marks the declarations of the public API. The library is
 * compiled with -fvisibility=hidden, so a function without this mark (every
 * internal uc__ function) is not in the shared library's dynamic symbol
 * table: only what these headers declare can be linked against.
 */
#ifndef UTXOCACHE_EXPORT_H
#define UTXOCACHE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define UC_EXPORT __attribute__((visibility("default")))
#else
#define UC_EXPORT
#endif

#endif /* UTXOCACHE_EXPORT_H */
