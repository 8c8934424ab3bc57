/*
 * UDP packet-rate load for scripts/bench/e2e.
 *
 *   udp sink PORT
 *       Binds 0.0.0.0:PORT and drains it with recvmmsg until killed. The
 *       count comes from the namespace's /proc/net/snmp (InDatagrams and
 *       RcvbufErrors), so this process only has to keep the socket empty.
 *   udp blast ADDRESS PORT SECONDS FLOWS SIZE
 *       Sends SIZE-byte datagrams to ADDRESS:PORT for SECONDS from FLOWS
 *       sockets (one source port each, so FLOWS flows for the proxy to
 *       spread), round robin in sendmmsg batches, as fast as it can. Prints
 *       the number sent and the number the kernel refused.
 *
 * Built by scripts/bench/e2e with `cc -O2`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int sink(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  int size = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("bind");
    return 1;
  }
  static char bufs[BATCH][2048];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = sizeof bufs[i];
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  for (;;) {
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0 && errno != EINTR) {
      perror("recvmmsg");
      return 1;
    }
  }
}

static int blast(const char *addr, int port, double seconds, int flows, int size) {
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, addr, &dst.sin_addr) != 1) {
    fprintf(stderr, "udp: bad address %s\n", addr);
    return 2;
  }
  if (flows < 1 || flows > 4096 || size < 1 || size > 1472) {
    fprintf(stderr, "udp: flows 1..4096, size 1..1472\n");
    return 2;
  }
  int *fds = calloc(flows, sizeof *fds);
  if (!fds) return 1;
  for (int f = 0; f < flows; f++) {
    fds[f] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fds[f] < 0 || connect(fds[f], (struct sockaddr *)&dst, sizeof dst) < 0) {
      perror("socket/connect");
      return 1;
    }
  }
  static char payload[1472];
  memset(payload, 'x', sizeof payload);
  struct iovec iov = {.iov_base = payload, .iov_len = (size_t)size};
  struct mmsghdr msgs[BATCH];
  for (int i = 0; i < BATCH; i++) {
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iov;
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  unsigned long long sent = 0, refused = 0;
  double end = now() + seconds;
  for (int f = 0;; f = (f + 1) % flows) {
    if ((f & 15) == 0 && now() >= end) break;
    int n = sendmmsg(fds[f], msgs, BATCH, MSG_DONTWAIT);
    if (n > 0)
      sent += n;
    else
      refused++;
  }
  printf("sent %llu refused %llu\n", sent, refused);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "sink") == 0) return sink(atoi(argv[2]));
  if (argc == 7 && strcmp(argv[1], "blast") == 0)
    return blast(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]), atoi(argv[6]));
  fprintf(stderr, "usage: udp sink PORT | udp blast ADDRESS PORT SECONDS FLOWS SIZE\n");
  return 2;
}
