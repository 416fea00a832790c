/* sockidle.h - which established TCP sockets are idle, asked of the kernel
 * (sock_diag, INET_DIAG_INFO: tcpi_last_data_sent / tcpi_last_data_recv), so
 * readers can count a process's idle connections by socket inode with no
 * hook in the traced process.
 *
 * One scan dumps every established TCP socket (IPv4 and IPv6) of the
 * reader's network namespace; a socket is idle when it has neither sent nor
 * received data for at least idle_ms. Sockets of other namespaces are not
 * seen (their descriptors then count as not idle).
 */
#ifndef LKS_SOCKIDLE_H
#define LKS_SOCKIDLE_H

#include <stddef.h>
#include <stdint.h>

struct sockidle;

/* Scans the kernel's established TCP sockets. Returns a set the caller
 * frees with sockidle_free(), or NULL with a message in err. */
struct sockidle *sockidle_scan(uint32_t idle_ms, char *err, size_t errlen);
void sockidle_free(struct sockidle *s);

/* 1 if the socket with this inode is established and idle, else 0. */
int sockidle_is_idle(const struct sockidle *s, uint64_t inode);

/* Established sockets seen by the scan, and how many of them were idle. */
size_t sockidle_established(const struct sockidle *s);
size_t sockidle_idle(const struct sockidle *s);

#endif
