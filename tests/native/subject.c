/* A tiny native "engine" with switchable memory bugs, for testing memcycle itself.
 *
 * It keeps one row buffer that every add replaces and clear frees. The Python side
 * (tests/engines_for_tests.py: NativeSubject) does the real searching; this library
 * only has to own memory the way a native index does, and to get it wrong on demand.
 * Built by the tests with `gcc -g -O0 -shared -fPIC` (plus -fsanitize=address for
 * the ASan variant); every function keeps its own frame so stacks name it.
 */
#include <stdlib.h>
#include <string.h>

enum {
    SUBJECT_CLEAN = 0,
    SUBJECT_SEGFAULT = 1,       /* search after a clear reads through a NULL row pointer */
    SUBJECT_SPIN = 2,           /* search after a clear never returns */
    SUBJECT_DOUBLE_FREE = 3,    /* clear frees the rows but keeps the pointer; add frees it again */
    SUBJECT_USE_AFTER_FREE = 4, /* clear frees the rows but keeps pointer and length; search reads */
    SUBJECT_OVERFLOW = 5,       /* add writes one float past the end of the new buffer */
    SUBJECT_INVALID_FREE = 6,   /* clear frees a pointer 16 bytes inside the buffer */
    SUBJECT_LEAK = 7            /* clear forgets the rows without freeing them */
};

static float *g_rows = NULL;
static size_t g_len = 0;
static int g_fault = SUBJECT_CLEAN;
static int g_clears = 0;
volatile unsigned long subject_spins = 0;

void subject_configure(int fault) {
    g_fault = fault;
    g_clears = 0;
}

__attribute__((noinline)) static float *subject_alloc_rows(size_t n) {
    return (float *)malloc((n ? n : 1) * sizeof(float));
}

__attribute__((noinline)) void subject_release_rows(float *rows) { free(rows); }

__attribute__((noinline)) void subject_fill_rows(float *rows, size_t n) {
    size_t end = g_fault == SUBJECT_OVERFLOW ? n + 1 : n;
    for (size_t i = 0; i < end; i++) rows[i] = (float)i;
}

void subject_add(size_t n) {
    float *rows = subject_alloc_rows(g_len + n);
    if (g_rows != NULL && g_len) memcpy(rows, g_rows, g_len * sizeof(float));
    subject_fill_rows(rows + g_len, n);
    if (g_rows != NULL) subject_release_rows(g_rows); /* a dangling pointer is freed again */
    g_rows = rows;
    g_len += n;
}

__attribute__((noinline)) float subject_read_null_row(void) {
    volatile float *row = NULL;
    return row[3];
}

__attribute__((noinline)) void subject_spin_in_search(void) {
    for (;;) subject_spins++;
}

float subject_search(void) {
    if (g_clears > 0 && g_fault == SUBJECT_SEGFAULT) return subject_read_null_row();
    if (g_clears > 0 && g_fault == SUBJECT_SPIN) subject_spin_in_search();
    if (g_rows == NULL || g_len == 0) return 0.0f;
    return g_rows[g_len - 1];
}

void subject_clear(void) {
    g_clears++;
    switch (g_fault) {
    case SUBJECT_DOUBLE_FREE:
        subject_release_rows(g_rows); /* pointer kept: the next add frees it again */
        g_len = 0;
        return;
    case SUBJECT_USE_AFTER_FREE:
        subject_release_rows(g_rows); /* pointer and length kept: search reads freed rows */
        return;
    case SUBJECT_INVALID_FREE:
        if (g_rows != NULL) subject_release_rows((float *)((char *)g_rows + 16));
        break;
    case SUBJECT_LEAK:
        break;
    default:
        subject_release_rows(g_rows);
    }
    g_rows = NULL;
    g_len = 0;
}
