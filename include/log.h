/* log.h - sluiced's diagnostics on stderr: one line each, with a level and the module. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <pthread.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Lines above this level are dropped (default LOG_INFO). */
void log_set_level(enum log_level level);

/* Print "sluiced: <level>: <module>: message" to stderr; thread-safe (one write per line). */
void log_msg(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Format an error message into a caller's buffer (nothing when <err> is NULL or <errlen> 0):
 * the "char *err, size_t errlen" out-parameter of functions that can fail. */
void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Name <t> (printf-style, cut to the kernel's 15 bytes) so that top -H, perf and
 * /proc/PID/task/TID/comm tell sluiced's threads apart. Best effort. */
void thread_name(pthread_t t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(mod, ...) log_msg(LOG_ERR, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_DEBUG, mod, __VA_ARGS__)

#endif
