/*
 * bindgen input: the DPDK API the dataplane uses, the shim, and the flag
 * constants that bindgen cannot expand by itself.
 */
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "src/shim.h"

/*
 * Most ethdev/mbuf flag macros are built with RTE_BIT64(n), a function-like
 * macro that bindgen's macro evaluator gives up on, so those flags would be
 * missing from the bindings. A `static const` initialised from the macro is
 * evaluated by clang itself, and bindgen turns it into a Rust `pub const`.
 * build.rs strips the SHIM_CONST_ prefix, so Rust sees the DPDK name.
 * Only names absent from the bindings otherwise may be listed here.
 * bindgen cannot represent values above i64::MAX this way, so
 * RTE_ETH_RSS_L3_SRC_ONLY (bit 63) is written in lib.rs and checked
 * against the header in shim.c.
 */
#define SHIM_U64(name) static const uint64_t SHIM_CONST_##name = name;
#define SHIM_U32(name) static const uint32_t SHIM_CONST_##name = name;

/* rte_eth_rss_conf.rss_hf */
SHIM_U64(RTE_ETH_RSS_IPV4)
SHIM_U64(RTE_ETH_RSS_FRAG_IPV4)
SHIM_U64(RTE_ETH_RSS_NONFRAG_IPV4_TCP)
SHIM_U64(RTE_ETH_RSS_NONFRAG_IPV4_UDP)
SHIM_U64(RTE_ETH_RSS_NONFRAG_IPV4_SCTP)
SHIM_U64(RTE_ETH_RSS_NONFRAG_IPV4_OTHER)
SHIM_U64(RTE_ETH_RSS_IPV6)
SHIM_U64(RTE_ETH_RSS_FRAG_IPV6)
SHIM_U64(RTE_ETH_RSS_NONFRAG_IPV6_TCP)
SHIM_U64(RTE_ETH_RSS_NONFRAG_IPV6_UDP)
SHIM_U64(RTE_ETH_RSS_NONFRAG_IPV6_SCTP)
SHIM_U64(RTE_ETH_RSS_NONFRAG_IPV6_OTHER)
SHIM_U64(RTE_ETH_RSS_IPV6_EX)
SHIM_U64(RTE_ETH_RSS_IPV6_TCP_EX)
SHIM_U64(RTE_ETH_RSS_IPV6_UDP_EX)
SHIM_U64(RTE_ETH_RSS_L2_PAYLOAD)
SHIM_U64(RTE_ETH_RSS_PORT)
SHIM_U64(RTE_ETH_RSS_VXLAN)
SHIM_U64(RTE_ETH_RSS_GENEVE)
SHIM_U64(RTE_ETH_RSS_NVGRE)
SHIM_U64(RTE_ETH_RSS_L3_DST_ONLY)
SHIM_U64(RTE_ETH_RSS_L4_SRC_ONLY)
SHIM_U64(RTE_ETH_RSS_L4_DST_ONLY)
SHIM_U64(RTE_ETH_RSS_IP)
SHIM_U64(RTE_ETH_RSS_UDP)
SHIM_U64(RTE_ETH_RSS_TCP)
SHIM_U64(RTE_ETH_RSS_SCTP)
SHIM_U64(RTE_ETH_RSS_TUNNEL)
SHIM_U64(RTE_ETH_RSS_PROTO_MASK)

/* rte_eth_rxmode.offloads / rte_eth_dev_info.rx_offload_capa */
SHIM_U64(RTE_ETH_RX_OFFLOAD_VLAN_STRIP)
SHIM_U64(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM)
SHIM_U64(RTE_ETH_RX_OFFLOAD_UDP_CKSUM)
SHIM_U64(RTE_ETH_RX_OFFLOAD_TCP_CKSUM)
SHIM_U64(RTE_ETH_RX_OFFLOAD_TCP_LRO)
SHIM_U64(RTE_ETH_RX_OFFLOAD_SCATTER)
SHIM_U64(RTE_ETH_RX_OFFLOAD_TIMESTAMP)
SHIM_U64(RTE_ETH_RX_OFFLOAD_RSS_HASH)
SHIM_U64(RTE_ETH_RX_OFFLOAD_CHECKSUM)

/* rte_eth_txmode.offloads / rte_eth_dev_info.tx_offload_capa */
SHIM_U64(RTE_ETH_TX_OFFLOAD_VLAN_INSERT)
SHIM_U64(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM)
SHIM_U64(RTE_ETH_TX_OFFLOAD_UDP_CKSUM)
SHIM_U64(RTE_ETH_TX_OFFLOAD_TCP_CKSUM)
SHIM_U64(RTE_ETH_TX_OFFLOAD_SCTP_CKSUM)
SHIM_U64(RTE_ETH_TX_OFFLOAD_TCP_TSO)
SHIM_U64(RTE_ETH_TX_OFFLOAD_UDP_TSO)
SHIM_U64(RTE_ETH_TX_OFFLOAD_OUTER_IPV4_CKSUM)
SHIM_U64(RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
SHIM_U64(RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)

/* rte_eth_conf.link_speeds */
SHIM_U32(RTE_ETH_LINK_SPEED_FIXED)
SHIM_U32(RTE_ETH_LINK_SPEED_1G)
SHIM_U32(RTE_ETH_LINK_SPEED_10G)
SHIM_U32(RTE_ETH_LINK_SPEED_25G)
SHIM_U32(RTE_ETH_LINK_SPEED_40G)
SHIM_U32(RTE_ETH_LINK_SPEED_100G)
