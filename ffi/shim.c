/* See shim.h: thin exported wrappers over DPDK's static inline functions. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_lpm.h>
#include <rte_version.h>
#include "shim.h"

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void shim_rte_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

int shim_rte_errno(void)
{
	return rte_errno;
}

unsigned int shim_rte_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t shim_rte_rdtsc(void)
{
	return rte_rdtsc();
}

uint64_t shim_rss_hf_ip_tcp_udp(void)
{
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

uint64_t shim_rx_offload_ipv4_cksum(void)
{
	return RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
}

int shim_rte_lpm_lookup(const struct rte_lpm *lpm, uint32_t ip, uint32_t *next_hop)
{
	return rte_lpm_lookup(lpm, ip, next_hop);
}

int shim_rte_lpm_lookup_bulk(const struct rte_lpm *lpm, const uint32_t *ips, uint32_t *next_hops, unsigned n)
{
	return rte_lpm_lookup_bulk(lpm, ips, next_hops, n);
}

const char *shim_rte_version(void)
{
	return rte_version();
}

/* ChaCha20-Poly1305 from Intel's multi-buffer crypto library (the engine of
 * DPDK's ipsec_mb crypto PMD), through its direct API: no cryptodev, no
 * jobs. The manager is a table of the best functions for this CPU. */
#include <intel-ipsec-mb.h>

void *shim_imb_mgr(int *arch)
{
	IMB_ARCH a = IMB_ARCH_NONE;
	IMB_MGR *m = alloc_mb_mgr(0);
	if (m == NULL)
		return NULL;
	init_mb_mgr_auto(m, &a);
	if (imb_get_errno(m) != 0) {
		free_mb_mgr(m);
		return NULL;
	}
	*arch = (int)a;
	return m;
}

void shim_imb_chacha_seal(void *mgr, const uint8_t *key, const uint8_t *iv, const uint8_t *aad, uint64_t aad_len,
			  uint8_t *buf, uint64_t len, uint8_t *tag)
{
	IMB_MGR *m = mgr;
	struct chacha20_poly1305_context_data ctx;
	IMB_CHACHA20_POLY1305_INIT(m, key, &ctx, iv, aad, aad_len);
	IMB_CHACHA20_POLY1305_ENC_UPDATE(m, key, &ctx, buf, buf, len);
	IMB_CHACHA20_POLY1305_ENC_FINALIZE(m, &ctx, tag, 16);
}

void shim_imb_chacha_open(void *mgr, const uint8_t *key, const uint8_t *iv, const uint8_t *aad, uint64_t aad_len,
			  uint8_t *buf, uint64_t len, uint8_t *tag_out)
{
	IMB_MGR *m = mgr;
	struct chacha20_poly1305_context_data ctx;
	IMB_CHACHA20_POLY1305_INIT(m, key, &ctx, iv, aad, aad_len);
	IMB_CHACHA20_POLY1305_DEC_UPDATE(m, key, &ctx, buf, buf, len);
	IMB_CHACHA20_POLY1305_DEC_FINALIZE(m, &ctx, tag_out, 16);
}
