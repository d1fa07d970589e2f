/* See shim.h: thin exported wrappers over DPDK's static inline functions. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* fopencookie */
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <rte_config.h>
#include <rte_log.h>
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

int shim_reta_spread(uint16_t port, uint16_t reta_size, uint16_t nq)
{
	struct rte_eth_rss_reta_entry64 conf[64];
	unsigned i;

	if (nq == 0 || reta_size == 0 || reta_size % RTE_ETH_RETA_GROUP_SIZE != 0 ||
	    reta_size / RTE_ETH_RETA_GROUP_SIZE > 64)
		return -EINVAL;
	memset(conf, 0, sizeof(conf));
	for (i = 0; i < reta_size; i++) {
		conf[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
		conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] = i % nq;
	}
	int ret = rte_eth_dev_rss_reta_update(port, conf, reta_size);
	if (ret != 0)
		return ret;
	for (i = 0; i < reta_size; i++)
		conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] = UINT16_MAX;
	ret = rte_eth_dev_rss_reta_query(port, conf, reta_size);
	if (ret != 0)
		return ret;
	for (i = 0; i < reta_size; i++)
		if (conf[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] != i % nq)
			return -EIO;
	return 0;
}

int shim_rss_conf_get(uint16_t port, uint8_t *key, uint8_t *len, uint64_t *hf)
{
	struct rte_eth_rss_conf c;

	memset(&c, 0, sizeof(c));
	c.rss_key = key;
	c.rss_key_len = *len;
	int ret = rte_eth_dev_rss_hash_conf_get(port, &c);
	*len = c.rss_key_len;
	*hf = c.rss_hf;
	return ret;
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

/* rte_sched, for the QoS benchmark: one port, one subport, one pipe whose
 * strict-priority traffic classes 0 and 1 carry Control and RealTime and
 * whose best-effort class's four WRR queues (weights 8:4:2:1) carry
 * Interactive, Streaming, Standard and Bulk, like Patronus's scheduler. */
#include <string.h>
/* rte_pie.h's inline functions call experimental symbols. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <rte_sched.h>
#pragma GCC diagnostic pop

struct rte_sched_port *shim_sched_create(int socket, uint64_t rate_bytes, uint16_t qsize)
{
	static struct rte_sched_subport_profile_params sp;
	static struct rte_sched_pipe_params pipe;
	struct rte_sched_port_params pp;
	struct rte_sched_subport_params sub;
	struct rte_sched_port *port;
	int i;

	memset(&sp, 0, sizeof(sp));
	sp.tb_rate = rate_bytes;
	sp.tb_size = 1000000;
	for (i = 0; i < RTE_SCHED_TRAFFIC_CLASSES_PER_PIPE; i++)
		sp.tc_rate[i] = rate_bytes;
	sp.tc_period = 10;

	memset(&pipe, 0, sizeof(pipe));
	pipe.tb_rate = rate_bytes;
	pipe.tb_size = 1000000;
	for (i = 0; i < RTE_SCHED_TRAFFIC_CLASSES_PER_PIPE; i++)
		pipe.tc_rate[i] = rate_bytes;
	pipe.tc_period = 10;
	pipe.tc_ov_weight = 1;
	pipe.wrr_weights[0] = 8;
	pipe.wrr_weights[1] = 4;
	pipe.wrr_weights[2] = 2;
	pipe.wrr_weights[3] = 1;

	memset(&pp, 0, sizeof(pp));
	pp.name = "patronus_sched_bench";
	pp.socket = socket;
	pp.rate = rate_bytes;
	pp.mtu = 1522;
	pp.frame_overhead = RTE_SCHED_FRAME_OVERHEAD_DEFAULT;
	pp.n_subports_per_port = 1;
	pp.n_subport_profiles = 1;
	pp.subport_profiles = &sp;
	pp.n_max_subport_profiles = 1;
	pp.n_pipes_per_subport = 1;
	port = rte_sched_port_config(&pp);
	if (port == NULL)
		return NULL;

	memset(&sub, 0, sizeof(sub));
	sub.n_pipes_per_subport_enabled = 1;
	for (i = 0; i < RTE_SCHED_TRAFFIC_CLASSES_PER_PIPE; i++)
		sub.qsize[i] = qsize;
	sub.pipe_profiles = &pipe;
	sub.n_pipe_profiles = 1;
	sub.n_max_pipe_profiles = 1;
	if (rte_sched_subport_config(port, 0, &sub, 0) != 0 || rte_sched_pipe_config(port, 0, 0, 0) != 0) {
		rte_sched_port_free(port);
		return NULL;
	}
	return port;
}

void shim_sched_write(struct rte_sched_port *port, struct rte_mbuf *m, uint32_t tc, uint32_t queue)
{
	rte_sched_port_pkt_write(port, m, 0, 0, tc, queue, RTE_COLOR_GREEN);
}

int shim_sched_enqueue(struct rte_sched_port *port, struct rte_mbuf **pkts, uint32_t n)
{
	return rte_sched_port_enqueue(port, pkts, n);
}

int shim_sched_dequeue(struct rte_sched_port *port, struct rte_mbuf **pkts, uint32_t n)
{
	return rte_sched_port_dequeue(port, pkts, n);
}

void shim_sched_free(struct rte_sched_port *port)
{
	rte_sched_port_free(port);
}

static shim_log_fn log_fn;

static ssize_t log_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	if (log_fn)
		log_fn((uint32_t)rte_log_cur_msg_loglevel(), buf, size);
	return (ssize_t)size;
}

int shim_log_redirect(shim_log_fn fn)
{
	cookie_io_functions_t io = { .read = NULL, .write = log_write, .seek = NULL, .close = NULL };
	FILE *f = fopencookie(NULL, "w", io);
	if (f == NULL)
		return -1;
	setvbuf(f, NULL, _IOLBF, 0);
	log_fn = fn;
	return rte_openlog_stream(f);
}
