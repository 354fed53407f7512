/* The DPDK surface Rampart binds. rte_config.h must come first: every other
 * header assumes its RTE_* build settings. */
#include <rte_config.h>

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_prefetch.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ether.h>
#include <rte_ethdev.h>
#include <rte_dev.h>
#include <rte_bus.h>
#include <rte_log.h>
#include <rte_version.h>

/* rte_errno is a macro over a per-lcore thread-local variable; Rust cannot
 * name it reliably, so it is read through this function (bindgen wraps it
 * like every other static-inline function). */
static inline int rampart_rte_errno(void) { return rte_errno; }

/* rte_pktmbuf_mtod is a macro: expose the data pointer of an mbuf. */
static inline void *rampart_pktmbuf_data(struct rte_mbuf *m) {
    return rte_pktmbuf_mtod(m, void *);
}
