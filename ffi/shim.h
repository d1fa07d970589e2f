/*
 * Hand-kept shim for the DPDK functions the data path calls that are
 * `static inline` (or macros) in the C headers and so have no symbol to link.
 * Keep this list short: only what the fast path needs.
 */
#ifndef PATRONUS_DPDK_SHIM_H
#define PATRONUS_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_lpm;

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned int count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
/* rte_pktmbuf_free_bulk is an exported function; it is bound directly. */
int shim_rte_errno(void);
unsigned int shim_rte_lcore_id(void);
uint64_t shim_rte_rdtsc(void);
/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP (function-like macros
 * bindgen cannot evaluate). */
uint64_t shim_rss_hf_ip_tcp_udp(void);
/* RTE_ETH_RX_OFFLOAD_IPV4_CKSUM (a function-like macro). */
uint64_t shim_rx_offload_ipv4_cksum(void);
/* rte_lpm_lookup / rte_lpm_lookup_bulk (static inline), for the LPM benchmark. */
int shim_rte_lpm_lookup(const struct rte_lpm *lpm, uint32_t ip, uint32_t *next_hop);
int shim_rte_lpm_lookup_bulk(const struct rte_lpm *lpm, const uint32_t *ips, uint32_t *next_hops, unsigned n);
/* rte_version() (static inline): "DPDK 22.11.x". */
const char *shim_rte_version(void);

#endif
