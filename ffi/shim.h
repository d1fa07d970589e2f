/*
 * Hand-kept shim for the DPDK functions the data path calls that are
 * `static inline` (or macros) in the C headers and so have no symbol to link.
 * Keep this list short: only what the fast path needs.
 */
#ifndef PATRONUS_DPDK_SHIM_H
#define PATRONUS_DPDK_SHIM_H

#include <stddef.h>
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
/* Fills the redirection table with entry i -> queue i % nq and reads it
 * back: 0 when the device holds exactly that table, -EIO when it reads
 * back otherwise, or the ethdev error. */
int shim_reta_spread(uint16_t port, uint16_t reta_size, uint16_t nq);
/* The device's RSS key (up to *len bytes into key; *len set to its
 * length) and hash functions. */
int shim_rss_conf_get(uint16_t port, uint8_t *key, uint8_t *len, uint64_t *hf);
/* RTE_ETH_RX_OFFLOAD_IPV4_CKSUM (a function-like macro). */
uint64_t shim_rx_offload_ipv4_cksum(void);
/* rte_lpm_lookup / rte_lpm_lookup_bulk (static inline), for the LPM benchmark. */
int shim_rte_lpm_lookup(const struct rte_lpm *lpm, uint32_t ip, uint32_t *next_hop);
int shim_rte_lpm_lookup_bulk(const struct rte_lpm *lpm, const uint32_t *ips, uint32_t *next_hops, unsigned n);
/* rte_version() (static inline): "DPDK 22.11.x". */
const char *shim_rte_version(void);
/* rte_sched for the QoS benchmark (see shim.c): create, classify, enqueue,
 * dequeue, free. */
struct rte_sched_port;
struct rte_sched_port *shim_sched_create(int socket, uint64_t rate_bytes, uint16_t qsize);
void shim_sched_write(struct rte_sched_port *port, struct rte_mbuf *m, uint32_t tc, uint32_t queue);
int shim_sched_enqueue(struct rte_sched_port *port, struct rte_mbuf **pkts, uint32_t n);
int shim_sched_dequeue(struct rte_sched_port *port, struct rte_mbuf **pkts, uint32_t n);
void shim_sched_free(struct rte_sched_port *port);
/* ChaCha20-Poly1305 from intel-ipsec-mb (direct API). shim_imb_mgr returns
 * a manager for this CPU (NULL on failure) and its IMB_ARCH in *arch. Seal
 * encrypts buf in place and writes the 16-byte tag; open decrypts in place
 * and writes the tag it computed (the caller compares). iv: 12 bytes. */
void *shim_imb_mgr(int *arch);
void shim_imb_chacha_seal(void *mgr, const uint8_t *key, const uint8_t *iv, const uint8_t *aad, uint64_t aad_len,
                          uint8_t *buf, uint64_t len, uint8_t *tag);
void shim_imb_chacha_open(void *mgr, const uint8_t *key, const uint8_t *iv, const uint8_t *aad, uint64_t aad_len,
                          uint8_t *buf, uint64_t len, uint8_t *tag_out);
/* DPDK's own log (EAL, drivers) goes to `fn` instead of stderr, a line at a
 * time with the message's level (RTE_LOG_EMERG 1 .. RTE_LOG_DEBUG 8), so the
 * appliance's JSON log carries it too. Call before rte_eal_init. */
typedef void (*shim_log_fn)(uint32_t level, const char *buf, size_t len);
int shim_log_redirect(shim_log_fn fn);

#endif
