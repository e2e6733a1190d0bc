/*
 * common.h - error codes and small helpers used by every layer.
 */
#ifndef PT_COMMON_H
#define PT_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Return codes: 0 success, negative failure (STYLE.md "Errors"). */
#define PT_OK       0
#define PT_ERROR    (-1)
#define PT_ENOMEM   (-2)
#define PT_EINVAL   (-3)
#define PT_ENOENT   (-4)
#define PT_EIO      (-5)
#define PT_ELIMIT   (-6)
#define PT_EEXPIRED (-7)
#define PT_DECLINED (-100)
#define PT_AGAIN    (-101)

#define PT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PT_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define PT_MAX(a, b)     ((a) > (b) ? (a) : (b))

#define pt_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#if defined(__GNUC__)
#define pt_likely(x)   __builtin_expect(!!(x), 1)
#define pt_unlikely(x) __builtin_expect(!!(x), 0)
#else
#define pt_likely(x)   (x)
#define pt_unlikely(x) (x)
#endif

/* A byte range that does not own its memory. */
typedef struct pt_str_s {
    const char *p;
    size_t len;
} pt_str_t;

#define PT_STR(lit) ((pt_str_t){(lit), sizeof(lit) - 1})

/* Case-insensitive comparison of a range with a NUL-terminated lower-case literal. */
int pt_str_ieq(const char *p, size_t len, const char *lower);

/* Abort with a message when memory cannot be had where recovery is impossible
 * (startup only; request paths handle PT_ENOMEM). */
void *pt_xmalloc(size_t n);
void *pt_xcalloc(size_t n, size_t size);
char *pt_xstrdup(const char *s);

/* The wall clock, in milliseconds since the epoch (what records, history
 * rows and the store keep). */
int64_t pt_wall_ms(void);

/* A monotonic clock in milliseconds (deadlines and waits). */
uint64_t pt_mono_ms(void);

#endif
