/*
 * Exported copies of DPDK's static-inline functions; see shim.h.
 * Each body is a plain forward so the behaviour stays DPDK's own.
 */
#include <errno.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "shim.h"

/* lib.rs spells this flag out by hand (bindgen cannot evaluate bit 63);
 * fail the build if the header ever disagrees. */
_Static_assert(RTE_ETH_RSS_L3_SRC_ONLY == (UINT64_C(1) << 63),
	       "update RTE_ETH_RSS_L3_SRC_ONLY in lib.rs");

uint16_t shim_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t shim_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *shim_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			    unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void shim_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

uint16_t shim_mbuf_refcnt_update(struct rte_mbuf *m, int16_t value)
{
	return rte_mbuf_refcnt_update(m, value);
}

uint8_t *shim_pktmbuf_data(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, uint8_t *);
}

uint16_t shim_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t shim_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

int shim_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
	/* pkt_len == data_len is only true for one segment; refuse chains
	 * rather than silently corrupting them. */
	if (m->nb_segs != 1 || (uint32_t)m->data_off + len > m->buf_len)
		return -EINVAL;
	m->data_len = len;
	m->pkt_len = len;
	return 0;
}

uint16_t shim_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t shim_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint8_t *shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_append(m, len);
}

uint8_t *shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_prepend(m, len);
}

uint8_t *shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_adj(m, len);
}

int shim_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

uint16_t shim_pktmbuf_port(const struct rte_mbuf *m)
{
	return m->port;
}

uint32_t shim_pktmbuf_rss_hash(const struct rte_mbuf *m)
{
	return m->hash.rss;
}

uint64_t shim_pktmbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

int shim_errno(void)
{
	return rte_errno;
}

unsigned int shim_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t shim_get_tsc_cycles(void)
{
	return rte_get_tsc_cycles();
}

unsigned int shim_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
				     unsigned int n, unsigned int *free_space)
{
	/* DPDK itself skips the out-param when it is NULL. */
	return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

unsigned int shim_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
				     unsigned int n, unsigned int *available)
{
	return rte_ring_dequeue_burst(r, obj_table, n, available);
}
