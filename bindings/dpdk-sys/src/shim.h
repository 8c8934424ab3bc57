/*
 * Non-inline wrappers around DPDK's `static inline` fast-path functions.
 *
 * Rust cannot call a C `static inline` function: it has no symbol in any
 * DPDK library. Each function here compiles the inline body once (in
 * shim.c, with pkg-config's cflags) and exports it under a `shim_` name.
 * bindgen reads this header, so it is the only declaration of these
 * functions; the Rust side never re-declares them by hand.
 *
 * Byte pointers are `uint8_t *` (not DPDK's `char *`) so that Rust sees
 * `*mut u8`.
 */
#ifndef SWITCHYARD_DPDK_SHIM_H
#define SWITCHYARD_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* --- ethdev burst I/O ------------------------------------------------- */

uint16_t shim_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* --- mbuf allocation -------------------------------------------------- */

/* NULL when the pool is empty. */
struct rte_mbuf *shim_pktmbuf_alloc(struct rte_mempool *mp);
/* 0 on success (all `count` allocated), negative errno otherwise (none). */
int shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			    unsigned int count);
/* Frees the whole chain; NULL is allowed. */
void shim_pktmbuf_free(struct rte_mbuf *m);
/* Returns the new reference count of `m`. */
uint16_t shim_mbuf_refcnt_update(struct rte_mbuf *m, int16_t value);

/* --- mbuf data access ------------------------------------------------- */

/* rte_pktmbuf_mtod(m, uint8_t *): start of the data in the first segment. */
uint8_t *shim_pktmbuf_data(struct rte_mbuf *m);
/* Bytes of data in the first segment. */
uint16_t shim_pktmbuf_data_len(const struct rte_mbuf *m);
/* Bytes of data in the whole chain. */
uint32_t shim_pktmbuf_pkt_len(const struct rte_mbuf *m);
/*
 * Sets data_len and pkt_len of a single-segment mbuf to `len`.
 * Returns 0, or -EINVAL (nothing changed) if `m` is chained or `len` does
 * not fit between the data start and the end of the buffer.
 */
int shim_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len);
uint16_t shim_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_pktmbuf_tailroom(const struct rte_mbuf *m);
/* These four return NULL (and change nothing) when there is no room. */
uint8_t *shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint8_t *shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
uint8_t *shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
/* 0 on success, -1 if `len` is larger than the last segment's data. */
int shim_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);

/* --- mbuf metadata ---------------------------------------------------- */

/* Input port the PMD stored in the mbuf. */
uint16_t shim_pktmbuf_port(const struct rte_mbuf *m);
/* hash.rss; only meaningful when ol_flags has RTE_MBUF_F_RX_RSS_HASH. */
uint32_t shim_pktmbuf_rss_hash(const struct rte_mbuf *m);
uint64_t shim_pktmbuf_ol_flags(const struct rte_mbuf *m);

/* --- EAL / lcore / time ----------------------------------------------- */

/* The calling thread's rte_errno (a per-lcore TLS variable). */
int shim_errno(void);
/* LCORE_ID_ANY on threads that EAL does not know. */
unsigned int shim_lcore_id(void);
uint64_t shim_get_tsc_cycles(void);

/* --- rings (void * elements) ------------------------------------------ */

/* `free_space` / `available` may be NULL. Return the number moved. */
unsigned int shim_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
				     unsigned int n, unsigned int *free_space);
unsigned int shim_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
				     unsigned int n, unsigned int *available);

#endif /* SWITCHYARD_DPDK_SHIM_H */
