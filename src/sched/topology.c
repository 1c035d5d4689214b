/* Reads the machine with hwloc into the plain arrays of topology.h. */
#include <errno.h>
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/topology.h"

/* Dense numbering of hwloc objects in order of first appearance (packages, NUMA nodes, caches without the
 * gaps left by cores outside the process's CPU set). */
typedef struct dense_map {
    const void **keys;
    int n;
} dense_map;

static int dense_index(dense_map *m, const void *key)
{
    for (int i = 0; i < m->n; i++)
        if (m->keys[i] == key)
            return i;
    m->keys[m->n] = key;
    return m->n++;
}

static int fail_source(incv3_error *err, const char *synthetic, const char *xml_path, const char *why)
{
    if (synthetic)
        return incv3_fail(err, "synthetic topology \"%s\": %s", synthetic, why);
    if (xml_path)
        return incv3_fail(err, "XML topology %s: %s", xml_path, why);
    return incv3_fail(err, "this machine's topology: %s", why);
}

/* The NUMA node whose CPUs include the core's, or NULL (no NUMA information). */
static hwloc_obj_t core_numa(hwloc_topology_t hw, hwloc_obj_t core)
{
    hwloc_obj_t node = NULL;
    while ((node = hwloc_get_next_obj_by_type(hw, HWLOC_OBJ_NUMANODE, node)))
        if (node->cpuset && !hwloc_bitmap_iszero(node->cpuset) && hwloc_bitmap_isincluded(core->cpuset, node->cpuset))
            return node;
    return NULL;
}

/* The nearest cache of the given type above the object (L1: data or unified), or NULL. */
static hwloc_obj_t cache_above(hwloc_obj_t obj, hwloc_obj_type_t type)
{
    for (hwloc_obj_t p = obj->parent; p; p = p->parent)
        if (p->type == type && p->attr && p->attr->cache.type != HWLOC_OBJ_CACHE_INSTRUCTION)
            return p;
    return NULL;
}

/* Fills the cache's fields; `sharing` counts every core under the cache, also those outside the process's
 * CPU set (other processes may run there). */
static void set_cache(incv3_cache_info *ci, hwloc_topology_t hw, hwloc_obj_t cache, hwloc_obj_type_t core_type,
                      dense_map *ids)
{
    if (!cache) {
        *ci = (incv3_cache_info){.size = 0, .id = -1, .sharing = 0};
        return;
    }
    ci->size = cache->attr->cache.size;
    ci->id = dense_index(ids, cache);
    ci->sharing = hwloc_get_nbobjs_inside_cpuset_by_type(hw, cache->cpuset, core_type);
    if (ci->sharing < 1)
        ci->sharing = 1;
}

/* Copies the cores (and their PUs inside `usable`) out of the loaded hwloc topology. */
static int extract(incv3_topology *t, hwloc_topology_t hw, hwloc_const_cpuset_t usable, incv3_error *err,
                   const char *synthetic, const char *xml_path)
{
    hwloc_obj_type_t core_type = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
    const int n_core_objs = hwloc_get_nbobjs_by_type(hw, core_type);
    const int n_pu_objs = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_PU);
    if (n_core_objs <= 0 || n_pu_objs <= 0)
        return fail_source(err, synthetic, xml_path, "hwloc reports no processing units");
    t->cores = calloc((size_t)n_core_objs, sizeof *t->cores);
    t->pus = calloc((size_t)n_pu_objs, sizeof *t->pus);
    dense_map maps[5];
    for (int i = 0; i < 5; i++)
        maps[i] = (dense_map){.keys = calloc((size_t)n_core_objs, sizeof(void *)), .n = 0};
    int ok = t->cores && t->pus;
    for (int i = 0; i < 5; i++)
        ok = ok && maps[i].keys;
    if (!ok) {
        for (int i = 0; i < 5; i++)
            free(maps[i].keys);
        return incv3_fail(err, "out of memory reading the topology");
    }
    dense_map *pkg_ids = &maps[0], *numa_ids = &maps[1], *l1_ids = &maps[2], *l2_ids = &maps[3], *l3_ids = &maps[4];
    static const char no_numa_key = 0, no_pkg_key = 0;

    for (hwloc_obj_t core = NULL; (core = hwloc_get_next_obj_by_type(hw, core_type, core));) {
        incv3_core_info *c = &t->cores[t->n_cores];
        c->pu_first = t->n_pus;
        c->n_pus = 0;
        for (hwloc_obj_t pu = NULL; (pu = hwloc_get_next_obj_inside_cpuset_by_type(hw, core->cpuset, HWLOC_OBJ_PU, pu));) {
            if (hwloc_bitmap_isset(usable, pu->os_index))
                t->pus[t->n_pus + c->n_pus++] = (int)pu->os_index;
            else
                t->pus_outside++;
        }
        if (c->n_pus == 0)
            continue;
        t->n_pus += c->n_pus;
        hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(hw, HWLOC_OBJ_PACKAGE, core);
        c->package = dense_index(pkg_ids, pkg ? (const void *)pkg : &no_pkg_key);
        hwloc_obj_t node = core_numa(hw, core);
        c->numa = dense_index(numa_ids, node ? (const void *)node : &no_numa_key);
        set_cache(&c->l1d, hw, cache_above(core, HWLOC_OBJ_L1CACHE), core_type, l1_ids);
        set_cache(&c->l2, hw, cache_above(core, HWLOC_OBJ_L2CACHE), core_type, l2_ids);
        set_cache(&c->l3, hw, cache_above(core, HWLOC_OBJ_L3CACHE), core_type, l3_ids);
        t->n_cores++;
    }
    t->n_packages = pkg_ids->n;
    t->n_numa = numa_ids->n;
    t->n_l3 = l3_ids->n;
    for (int i = 0; i < 5; i++)
        free(maps[i].keys);
    if (t->n_cores == 0)
        return fail_source(err, synthetic, xml_path, "none of its processing units is in this process's CPU set");
    return 0;
}

int incv3_topology_load(incv3_topology *t, const char *synthetic, const char *xml_path, incv3_error *err)
{
    memset(t, 0, sizeof *t);
    hwloc_topology_t hw;
    if (hwloc_topology_init(&hw))
        return incv3_fail(err, "hwloc: cannot initialize a topology (%s)", strerror(errno));
    if (synthetic) {
        if (hwloc_topology_set_synthetic(hw, synthetic)) {
            hwloc_topology_destroy(hw);
            return fail_source(err, synthetic, NULL,
                               "hwloc rejects this description (expected e.g. \"pack:2 l3:4(size=32MiB) "
                               "l2:8(size=512KiB) l1d:1(size=32KiB) core:1 pu:2\")");
        }
        snprintf(t->source, sizeof t->source, "synthetic \"%.280s\"", synthetic);
    } else if (xml_path) {
        if (hwloc_topology_set_xml(hw, xml_path)) {
            const int e = errno;
            hwloc_topology_destroy(hw);
            char why[160];
            if (e == ENOENT || e == EACCES || e == EISDIR)
                snprintf(why, sizeof why, "cannot read it (%s)", strerror(e));
            else
                snprintf(why, sizeof why, "not an hwloc XML topology (as lstopo writes with 'lstopo FILE.xml')");
            return fail_source(err, NULL, xml_path, why);
        }
        snprintf(t->source, sizeof t->source, "XML file %.300s", xml_path);
    } else {
        snprintf(t->source, sizeof t->source, "this machine");
    }
    if (hwloc_topology_load(hw)) {
        const int e = errno;
        hwloc_topology_destroy(hw);
        char why[160];
        snprintf(why, sizeof why, "hwloc cannot load it (%s)", strerror(e));
        return fail_source(err, synthetic, xml_path, why);
    }
    t->this_system = hwloc_topology_is_thissystem(hw);

    /* On this machine only the PUs the process may run on count (taskset, cpuset cgroups). */
    hwloc_bitmap_t usable = hwloc_bitmap_dup(hwloc_topology_get_allowed_cpuset(hw));
    if (!usable) {
        hwloc_topology_destroy(hw);
        return incv3_fail(err, "out of memory reading the topology");
    }
    if (t->this_system) {
        hwloc_bitmap_t bound = hwloc_bitmap_alloc();
        if (bound && hwloc_get_cpubind(hw, bound, HWLOC_CPUBIND_PROCESS) == 0 && !hwloc_bitmap_iszero(bound))
            hwloc_bitmap_and(usable, usable, bound);
        hwloc_bitmap_free(bound);
    }
    int rc = extract(t, hw, usable, err, synthetic, xml_path);
    hwloc_bitmap_free(usable);
    if (rc) {
        hwloc_topology_destroy(hw);
        free(t->cores);
        free(t->pus);
        memset(t, 0, sizeof *t);
        return -1;
    }
    t->hw = hw;
    return 0;
}

void incv3_topology_free(incv3_topology *t)
{
    if (!t)
        return;
    if (t->hw)
        hwloc_topology_destroy((hwloc_topology_t)t->hw);
    free(t->cores);
    free(t->pus);
    memset(t, 0, sizeof *t);
}

void incv3_topology_keep_share(incv3_topology *t, int share, int shares)
{
    if (shares <= 1 || t->n_cores < 1)
        return;
    int first, count;
    if (shares > t->n_cores) {
        first = share % t->n_cores, count = 1;
    } else {
        first = (int)((long)share * t->n_cores / shares);
        count = (int)((long)(share + 1) * t->n_cores / shares) - first;
    }
    memmove(t->cores, t->cores + first, sizeof *t->cores * (size_t)count);
    t->n_cores = count;
    t->n_pus = 0;
    for (int c = 0; c < count; c++)
        t->n_pus += t->cores[c].n_pus;
}
