/*
 * sd_kube_roles.c - Kubernetes SD's roles: one object of the API (as JSON)
 * made into its target group with Prometheus' meta labels
 * (discovery/kubernetes: node.go, pod.go, service.go, endpoints.go,
 * endpointslice.go, ingress.go).
 *
 *   role           source                      targets
 *   node           node/<name>                 the kubelet: first address of
 *                                              InternalIP, ExternalIP, LegacyHostIP, Hostname
 *   pod            pod/<ns>/<name>             each container port (the pod IP
 *                                              alone for a container without ports)
 *   service        svc/<ns>/<name>             <name>.<ns>.svc:<port> per port
 *   endpoints      endpoints/<ns>/<name>       each address and port, and the
 *                                              backing pods' other container ports
 *   endpointslice  endpointslice/<ns>/<name>   the same from an EndpointSlice
 *   ingress        ingress/<ns>/<name>         each host and path
 *
 * The objects an object refers to (a pod's node with attach_metadata.node,
 * its namespace with attach_metadata.namespace, an endpoints' service and
 * pods) come through the lookups of sd_kube_ctx; the namespace's labels and
 * annotations are __meta_kubernetes_namespace_label_<name> (labelpresent,
 * annotation, annotationpresent) on every target of a namespaced object.
 * With attach_metadata.deployment, .job and .cronjob a pod's controller
 * (its ReplicaSet or Job) comes through ctx->owner, and its own controller
 * names the Deployment or CronJob (__meta_kubernetes_pod_deployment_name,
 * ..._job_name, ..._cronjob_name).
 * Labels and annotations become ..._label_<name> / ..._labelpresent_<name>
 * (and annotation) with the name sanitised to [a-zA-Z0-9_].
 *
 * Threading: pure; any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/sd.h"

#define MP "__meta_kubernetes_"

static const char *s_of(const json_val *o, const char *key) {
    const char *s = json_get_str(o, key);
    return s ? s : "";
}

static const json_val *obj_of(const json_val *o, const char *key) {
    const json_val *v = json_get(o, key);
    return v && v->type == JSON_OBJ ? v : NULL;
}

static const json_val *arr_of(const json_val *o, const char *key) {
    const json_val *v = json_get(o, key);
    return v && v->type == JSON_ARR ? v : NULL;
}

/* An integer member as text ("" when absent). */
static const char *num_of(const json_val *o, const char *key, char *out, size_t n) {
    const json_val *v = json_get(o, key);
    out[0] = 0;
    if (v && v->type == JSON_NUM)
        snprintf(out, n, "%lld", (long long)v->num);
    return out;
}

static const char *bool_of(const json_val *o, const char *key) {
    const json_val *v = json_get(o, key);
    return v && v->type == JSON_BOOL ? (v->b ? "true" : "false") : NULL;
}

/* metadata.labels and .annotations as <kind>_label_<k>, <kind>_labelpresent_<k>, ... */
static void meta_maps(sd_gb *b, const json_val *md, const char *kind, int tgt) {
    static const char *const maps[][2] = {{"labels", "label"}, {"annotations", "annotation"}};
    for (size_t m = 0; m < 2; m++) {
        const json_val *o = obj_of(md, maps[m][0]);
        char p1[96], p2[96];
        snprintf(p1, sizeof p1, MP "%s_%s_", kind, maps[m][1]);
        snprintf(p2, sizeof p2, MP "%s_%spresent_", kind, maps[m][1]);
        for (size_t i = 0; o && i < o->n; i++) {
            if (o->kids[i].type != JSON_STR)
                continue;
            if (tgt) {
                sd_gb_tlabel_san(b, p1, o->keys[i], o->kids[i].str);
                sd_gb_tlabel_san(b, p2, o->keys[i], "true");
            } else {
                sd_gb_label_san(b, p1, o->keys[i], o->kids[i].str);
                sd_gb_label_san(b, p2, o->keys[i], "true");
            }
        }
    }
}

static void put_label(sd_gb *b, int tgt, const char *name, const char *value) {
    if (tgt)
        sd_gb_tlabel(b, name, value);
    else
        sd_gb_label(b, name, value);
}

static void host_port(char *out, size_t n, const char *host, const char *port) {
    snprintf(out, n, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

static char *source(const char *prefix, const json_val *md, int namespaced) {
    const char *ns = s_of(md, "namespace"), *name = s_of(md, "name");
    size_t n = strlen(prefix) + strlen(ns) + strlen(name) + 3;
    char *s = malloc(n);
    if (s) {
        if (namespaced)
            snprintf(s, n, "%s/%s/%s", prefix, ns, name);
        else
            snprintf(s, n, "%s/%s", prefix, name);
    }
    return s;
}

static sd_tg *done(sd_gb *b, char *src) {
    sd_tg *g = src ? sd_gb_done(b, src) : NULL;
    if (!src)
        sd_gb_reset(b);
    free(src);
    return g;
}

/* ---- node ------------------------------------------------------------------------- */

/* The node's name and labels, as attach_metadata.node adds them to a pod's or
 * an endpoint's (group or target) labels. */
static void node_labels(sd_gb *b, const json_val *node, const char *name, int tgt) {
    put_label(b, tgt, MP "node_name", name);
    const json_val *ls = obj_of(obj_of(node, "metadata"), "labels");
    for (size_t i = 0; ls && i < ls->n; i++) {
        if (ls->kids[i].type != JSON_STR)
            continue;
        if (tgt) {
            sd_gb_tlabel_san(b, MP "node_label_", ls->keys[i], ls->kids[i].str);
            sd_gb_tlabel_san(b, MP "node_labelpresent_", ls->keys[i], "true");
        } else {
            sd_gb_label_san(b, MP "node_label_", ls->keys[i], ls->kids[i].str);
            sd_gb_label_san(b, MP "node_labelpresent_", ls->keys[i], "true");
        }
    }
}

static void attach_node(sd_gb *b, const sd_kube_ctx *c, const char *name, int tgt, arena *a) {
    if (!c || !c->attach_node || !c->node || !name || !*name)
        return;
    const json_val *node = c->node(c->data, name, a);
    if (node)
        node_labels(b, node, name, tgt);
}

static sd_tg *build_node(const json_val *o, sd_gb *b) {
    const json_val *md = obj_of(o, "metadata"), *st = obj_of(o, "status");
    const char *name = s_of(md, "name");
    sd_gb_label(b, MP "node_name", name);
    sd_gb_label(b, MP "node_provider_id", s_of(obj_of(o, "spec"), "providerID"));
    meta_maps(b, md, "node", 0);
    const json_val *conds = arr_of(st, "conditions");
    for (size_t i = 0; conds && i < conds->n; i++) {
        char t[128], v[32];
        snprintf(t, sizeof t, "%s", s_of(&conds->kids[i], "type"));
        snprintf(v, sizeof v, "%s", s_of(&conds->kids[i], "status"));
        for (char *p = t; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        for (char *p = v; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        if (*t)
            sd_gb_label_san(b, MP "node_condition_", t, v);
    }
    /* the address: the first of these types there is */
    static const char *const order[] = {"InternalIP", "ExternalIP", "LegacyHostIP", "Hostname"};
    const json_val *addrs = arr_of(st, "addresses");
    const char *addr = NULL;
    for (size_t k = 0; k < 4 && !addr; k++)
        for (size_t i = 0; addrs && i < addrs->n && !addr; i++)
            if (!strcmp(s_of(&addrs->kids[i], "type"), order[k]))
                addr = s_of(&addrs->kids[i], "address");
    if (addr && *addr) {
        char port[32], hp[600];
        num_of(obj_of(obj_of(st, "daemonEndpoints"), "kubeletEndpoint"), "Port", port, sizeof port);
        host_port(hp, sizeof hp, addr, *port ? port : "0");
        sd_gb_target(b, hp);
        sd_gb_tlabel(b, "instance", name);
        /* the first address of each type */
        for (size_t i = 0; addrs && i < addrs->n; i++) {
            const char *ty = s_of(&addrs->kids[i], "type");
            int first = 1;
            for (size_t j = 0; j < i; j++)
                first &= strcmp(s_of(&addrs->kids[j], "type"), ty) != 0;
            if (first && *ty)
                sd_gb_tlabel_san(b, MP "node_address_", ty, s_of(&addrs->kids[i], "address"));
        }
    }
    return done(b, source("node", md, 0));
}

/* ---- pod ---------------------------------------------------------------------------- */

/* podLabels: the pod's own labels (not its namespace). */
static void pod_labels(sd_gb *b, const json_val *pod, int tgt) {
    const json_val *md = obj_of(pod, "metadata"), *st = obj_of(pod, "status"), *spec = obj_of(pod, "spec");
    put_label(b, tgt, MP "pod_name", s_of(md, "name"));
    put_label(b, tgt, MP "pod_ip", s_of(st, "podIP"));
    const char *ready = "unknown";
    const json_val *conds = arr_of(st, "conditions");
    for (size_t i = 0; conds && i < conds->n; i++)
        if (!strcmp(s_of(&conds->kids[i], "type"), "Ready")) {
            const char *v = s_of(&conds->kids[i], "status");
            ready = !strcmp(v, "True") ? "true" : !strcmp(v, "False") ? "false" : "unknown";
        }
    put_label(b, tgt, MP "pod_ready", ready);
    put_label(b, tgt, MP "pod_phase", s_of(st, "phase"));
    put_label(b, tgt, MP "pod_node_name", s_of(spec, "nodeName"));
    put_label(b, tgt, MP "pod_host_ip", s_of(st, "hostIP"));
    put_label(b, tgt, MP "pod_uid", s_of(md, "uid"));
    const json_val *ctl = sd_kube_controller(pod);
    if (ctl) {
        put_label(b, tgt, MP "pod_controller_kind", s_of(ctl, "kind"));
        put_label(b, tgt, MP "pod_controller_name", s_of(ctl, "name"));
    }
    meta_maps(b, md, "pod", tgt);
}

const json_val *sd_kube_controller(const json_val *obj) {
    const json_val *owners = arr_of(obj_of(obj, "metadata"), "ownerReferences");
    for (size_t i = 0; owners && i < owners->n; i++) {
        const json_val *c = json_get(&owners->kids[i], "controller");
        if (c && c->type == JSON_BOOL && c->b)
            return &owners->kids[i];
    }
    return NULL;
}

/* The name of obj's controller when it is of kind, or NULL. */
static const char *controller_of(const json_val *obj, const char *kind) {
    const json_val *ctl = sd_kube_controller(obj);
    return ctl && !strcmp(s_of(ctl, "kind"), kind) && *s_of(ctl, "name") ? s_of(ctl, "name") : NULL;
}

/* attach_metadata.deployment, .job, .cronjob: pod -> its ReplicaSet -> the
 * Deployment; pod -> its Job (-> the CronJob).  Known owners only: a
 * ReplicaSet or Job not (yet) watched adds nothing. */
static void attach_owners(sd_gb *b, const sd_kube_ctx *c, const json_val *pod, arena *a) {
    if (!c || !c->owner)
        return;
    const char *ns = s_of(obj_of(pod, "metadata"), "namespace"), *name;
    if (c->attach_deployment && (name = controller_of(pod, "ReplicaSet")) != NULL) {
        const char *d = controller_of(c->owner(c->data, "replicasets", ns, name, a), "Deployment");
        if (d)
            sd_gb_label(b, MP "pod_deployment_name", d);
    }
    if ((c->attach_job || c->attach_cronjob) && (name = controller_of(pod, "Job")) != NULL) {
        const json_val *job = c->owner(c->data, "jobs", ns, name, a);
        const char *cj = controller_of(job, "CronJob");
        if (job && c->attach_job)
            sd_gb_label(b, MP "pod_job_name", name);
        if (cj && c->attach_cronjob)
            sd_gb_label(b, MP "pod_cronjob_name", cj);
    }
}

static const char *container_id(const json_val *pod, const char *name, int init) {
    const json_val *sts = arr_of(obj_of(pod, "status"), init ? "initContainerStatuses" : "containerStatuses");
    for (size_t i = 0; sts && i < sts->n; i++)
        if (!strcmp(s_of(&sts->kids[i], "name"), name))
            return s_of(&sts->kids[i], "containerID");
    return "";
}

static sd_tg *build_pod(const json_val *o, const sd_kube_ctx *c, sd_gb *b, arena *a) {
    const json_val *md = obj_of(o, "metadata"), *spec = obj_of(o, "spec");
    const char *ip = s_of(obj_of(o, "status"), "podIP");
    if (!*ip) /* a pod starting or evicted: no target */
        return done(b, source("pod", md, 1));
    pod_labels(b, o, 0);
    sd_gb_label(b, MP "namespace", s_of(md, "namespace"));
    attach_node(b, c, s_of(spec, "nodeName"), 0, a);
    attach_owners(b, c, o, a);
    for (int init = 0; init < 2; init++) {
        const json_val *cs = arr_of(spec, init ? "initContainers" : "containers");
        for (size_t i = 0; cs && i < cs->n; i++) {
            const json_val *ct = &cs->kids[i], *ports = arr_of(ct, "ports");
            const char *cname = s_of(ct, "name"), *cid = container_id(o, cname, init);
            size_t np = ports ? ports->n : 0;
            for (size_t j = 0; j < (np ? np : 1); j++) {
                char num[32] = "", hp[600];
                if (np) {
                    num_of(&ports->kids[j], "containerPort", num, sizeof num);
                    host_port(hp, sizeof hp, ip, num);
                }
                sd_gb_target(b, np ? hp : ip);
                sd_gb_tlabel(b, MP "pod_container_name", cname);
                sd_gb_tlabel(b, MP "pod_container_id", cid);
                sd_gb_tlabel(b, MP "pod_container_image", s_of(ct, "image"));
                sd_gb_tlabel(b, MP "pod_container_init", init ? "true" : "false");
                if (np) {
                    sd_gb_tlabel(b, MP "pod_container_port_number", num);
                    sd_gb_tlabel(b, MP "pod_container_port_name", s_of(&ports->kids[j], "name"));
                    sd_gb_tlabel(b, MP "pod_container_port_protocol", s_of(&ports->kids[j], "protocol"));
                }
            }
        }
    }
    return done(b, source("pod", md, 1));
}

/* ---- service -------------------------------------------------------------------------- */

static void service_labels(sd_gb *b, const json_val *svc) {
    const json_val *md = obj_of(svc, "metadata");
    sd_gb_label(b, MP "service_name", s_of(md, "name"));
    sd_gb_label(b, MP "namespace", s_of(md, "namespace"));
    meta_maps(b, md, "service", 0);
}

static sd_tg *build_service(const json_val *o, sd_gb *b) {
    const json_val *md = obj_of(o, "metadata"), *spec = obj_of(o, "spec");
    service_labels(b, o);
    const char *type = s_of(spec, "type");
    /* the load balancer's addresses, comma-separated, or the deprecated spec.loadBalancerIP */
    buf lb = BUF_INIT;
    const json_val *lbi = arr_of(obj_of(obj_of(o, "status"), "loadBalancer"), "ingress");
    for (size_t i = 0; lbi && i < lbi->n; i++) {
        const char *ip = s_of(&lbi->kids[i], "ip");
        if (!*ip)
            ip = s_of(&lbi->kids[i], "hostname");
        if (*ip)
            buf_printf(&lb, "%s%s", lb.len ? "," : "", ip);
    }
    if (!lb.len)
        buf_puts(&lb, s_of(spec, "loadBalancerIP"));
    buf_putc(&lb, 0);
    const json_val *ports = arr_of(spec, "ports");
    for (size_t i = 0; ports && i < ports->n; i++) {
        char num[32], addr[600], host[520];
        num_of(&ports->kids[i], "port", num, sizeof num);
        snprintf(host, sizeof host, "%.250s.%.250s.svc", s_of(md, "name"), s_of(md, "namespace"));
        host_port(addr, sizeof addr, host, num);
        sd_gb_target(b, addr);
        sd_gb_tlabel(b, MP "service_port_name", s_of(&ports->kids[i], "name"));
        sd_gb_tlabel(b, MP "service_port_number", num);
        sd_gb_tlabel(b, MP "service_port_protocol", s_of(&ports->kids[i], "protocol"));
        sd_gb_tlabel(b, MP "service_type", type);
        if (!strcmp(type, "ExternalName"))
            sd_gb_tlabel(b, MP "service_external_name", s_of(spec, "externalName"));
        else
            sd_gb_tlabel(b, MP "service_cluster_ip", s_of(spec, "clusterIP"));
        if (!strcmp(type, "LoadBalancer") && !buf_error(&lb))
            sd_gb_tlabel(b, MP "service_loadbalancer_ip", lb.data);
    }
    buf_free(&lb);
    return done(b, source("svc", md, 1));
}

/* ---- endpoints and endpointslices ---------------------------------------------------------- */

typedef struct seen_pod {
    const json_val *pod;
    char ports[64][12]; /* the endpoint ports a target was made for */
    size_t nports;
} seen_pod;

/* An endpoint target backed by a pod: the pod's labels, and the container
 * port matching the endpoint's port.  Records the pod and port in seen. */
static void endpoint_pod(sd_gb *b, const json_val *pod, const char *port, const char *proto, seen_pod *seen,
                         size_t *nseen, size_t max) {
    pod_labels(b, pod, 1);
    const json_val *cs = arr_of(obj_of(pod, "spec"), "containers");
    int found = 0;
    for (size_t i = 0; cs && i < cs->n && !found; i++) {
        const json_val *ports = arr_of(&cs->kids[i], "ports");
        for (size_t j = 0; ports && j < ports->n && !found; j++) {
            char num[32];
            if (strcmp(num_of(&ports->kids[j], "containerPort", num, sizeof num), port) != 0)
                continue;
            found = 1;
            sd_gb_tlabel(b, MP "pod_container_name", s_of(&cs->kids[i], "name"));
            sd_gb_tlabel(b, MP "pod_container_image", s_of(&cs->kids[i], "image"));
            sd_gb_tlabel(b, MP "pod_container_port_name", s_of(&ports->kids[j], "name"));
            sd_gb_tlabel(b, MP "pod_container_port_number", num);
            sd_gb_tlabel(b, MP "pod_container_port_protocol", proto);
        }
    }
    size_t k = 0;
    while (k < *nseen && seen[k].pod != pod)
        k++;
    if (k == *nseen) {
        if (*nseen == max)
            return;
        seen[k].pod = pod;
        seen[k].nports = 0;
        (*nseen)++;
    }
    if (seen[k].nports < 64)
        snprintf(seen[k].ports[seen[k].nports++], sizeof seen[k].ports[0], "%s", port);
}

/* The container ports of the seen pods no endpoint port covered, as targets. */
static void unseen_ports(sd_gb *b, seen_pod *seen, size_t nseen) {
    for (size_t k = 0; k < nseen; k++) {
        const json_val *pod = seen[k].pod, *cs = arr_of(obj_of(pod, "spec"), "containers");
        const char *ip = s_of(obj_of(pod, "status"), "podIP");
        for (size_t i = 0; cs && i < cs->n; i++) {
            const json_val *ports = arr_of(&cs->kids[i], "ports");
            for (size_t j = 0; ports && j < ports->n; j++) {
                char num[32], hp[600];
                num_of(&ports->kids[j], "containerPort", num, sizeof num);
                int covered = 0;
                for (size_t q = 0; q < seen[k].nports && !covered; q++)
                    covered = !strcmp(seen[k].ports[q], num);
                if (covered)
                    continue;
                host_port(hp, sizeof hp, ip, num);
                sd_gb_target(b, hp);
                sd_gb_tlabel(b, MP "pod_container_name", s_of(&cs->kids[i], "name"));
                sd_gb_tlabel(b, MP "pod_container_image", s_of(&cs->kids[i], "image"));
                sd_gb_tlabel(b, MP "pod_container_port_name", s_of(&ports->kids[j], "name"));
                sd_gb_tlabel(b, MP "pod_container_port_number", num);
                sd_gb_tlabel(b, MP "pod_container_port_protocol", s_of(&ports->kids[j], "protocol"));
                pod_labels(b, pod, 1);
            }
        }
    }
}

static const json_val *ref_pod(const json_val *ref, const char *ns, const sd_kube_ctx *c, arena *a) {
    if (!ref || strcmp(s_of(ref, "kind"), "Pod") != 0 || !c || !c->pod)
        return NULL;
    const char *rns = s_of(ref, "namespace");
    return c->pod(c->data, *rns ? rns : ns, s_of(ref, "name"), a);
}

static void add_service(sd_gb *b, const sd_kube_ctx *c, const char *ns, const char *name, arena *a) {
    if (!c || !c->service || !name || !*name)
        return;
    const json_val *svc = c->service(c->data, ns, name, a);
    if (svc)
        service_labels(b, svc);
}

#define MAX_SEEN 256

/* What an endpoint's target gets from the objects it refers to: its node's
 * labels (attach_metadata.node; the node named, or a Node target), and the
 * backing pod's, recorded in seen. */
static void endpoint_refs(sd_gb *b, const sd_kube_ctx *c, arena *a, const char *node, const json_val *ref,
                          const char *ns, const json_val *port, const char *num, seen_pod *seen,
                          size_t *nseen) {
    if (!*node && ref && !strcmp(s_of(ref, "kind"), "Node"))
        node = s_of(ref, "name");
    attach_node(b, c, node, 1, a);
    const json_val *pod = ref_pod(ref, ns, c, a);
    if (pod && seen)
        endpoint_pod(b, pod, num, s_of(port, "protocol"), seen, nseen, MAX_SEEN);
}

static sd_tg *build_endpoints(const json_val *o, const sd_kube_ctx *c, sd_gb *b, arena *a) {
    const json_val *md = obj_of(o, "metadata");
    const char *ns = s_of(md, "namespace");
    sd_gb_label(b, MP "namespace", ns);
    sd_gb_label(b, MP "endpoints_name", s_of(md, "name"));
    meta_maps(b, md, "endpoints", 0);
    add_service(b, c, ns, s_of(md, "name"), a);
    seen_pod *seen = calloc(MAX_SEEN, sizeof *seen);
    size_t nseen = 0;
    const json_val *subsets = arr_of(o, "subsets");
    for (size_t s = 0; subsets && s < subsets->n; s++) {
        const json_val *ss = &subsets->kids[s], *ports = arr_of(ss, "ports");
        for (size_t p = 0; ports && p < ports->n; p++) {
            const json_val *port = &ports->kids[p];
            char num[32];
            num_of(port, "port", num, sizeof num);
            for (int ready = 1; ready >= 0; ready--) {
                const json_val *addrs = arr_of(ss, ready ? "addresses" : "notReadyAddresses");
                for (size_t i = 0; addrs && i < addrs->n; i++) {
                    const json_val *ad = &addrs->kids[i], *ref = obj_of(ad, "targetRef");
                    char hp[600];
                    host_port(hp, sizeof hp, s_of(ad, "ip"), num);
                    sd_gb_target(b, hp);
                    sd_gb_tlabel(b, MP "endpoint_port_name", s_of(port, "name"));
                    sd_gb_tlabel(b, MP "endpoint_port_protocol", s_of(port, "protocol"));
                    sd_gb_tlabel(b, MP "endpoint_ready", ready ? "true" : "false");
                    if (ref) {
                        sd_gb_tlabel(b, MP "endpoint_address_target_kind", s_of(ref, "kind"));
                        sd_gb_tlabel(b, MP "endpoint_address_target_name", s_of(ref, "name"));
                    }
                    sd_gb_tlabel(b, MP "endpoint_node_name", s_of(ad, "nodeName"));
                    sd_gb_tlabel(b, MP "endpoint_hostname", s_of(ad, "hostname"));
                    endpoint_refs(b, c, a, s_of(ad, "nodeName"), ref, ns, port, num, seen, &nseen);
                }
            }
        }
    }
    if (seen)
        unseen_ports(b, seen, nseen);
    free(seen);
    return done(b, source("endpoints", md, 1));
}

static sd_tg *build_endpointslice(const json_val *o, const sd_kube_ctx *c, sd_gb *b, arena *a) {
    const json_val *md = obj_of(o, "metadata");
    const char *ns = s_of(md, "namespace");
    sd_gb_label(b, MP "namespace", ns);
    sd_gb_label(b, MP "endpointslice_name", s_of(md, "name"));
    sd_gb_label(b, MP "endpointslice_address_type", s_of(o, "addressType"));
    meta_maps(b, md, "endpointslice", 0);
    add_service(b, c, ns, s_of(obj_of(md, "labels"), "kubernetes.io/service-name"), a);
    seen_pod *seen = calloc(MAX_SEEN, sizeof *seen);
    size_t nseen = 0;
    const json_val *ports = arr_of(o, "ports"), *eps = arr_of(o, "endpoints");
    for (size_t p = 0; ports && p < ports->n; p++) {
        const json_val *port = &ports->kids[p];
        char num[32];
        num_of(port, "port", num, sizeof num);
        for (size_t e = 0; eps && e < eps->n; e++) {
            const json_val *ep = &eps->kids[e], *addrs = arr_of(ep, "addresses"),
                           *ref = obj_of(ep, "targetRef");
            const json_val *conds = obj_of(ep, "conditions"), *topo = obj_of(ep, "deprecatedTopology");
            for (size_t i = 0; addrs && i < addrs->n; i++) {
                if (addrs->kids[i].type != JSON_STR)
                    continue;
                char hp[600];
                if (*num)
                    host_port(hp, sizeof hp, addrs->kids[i].str, num);
                else
                    snprintf(hp, sizeof hp, "%s", addrs->kids[i].str);
                sd_gb_target(b, hp);
                sd_gb_tlabel(b, MP "endpointslice_port_name", s_of(port, "name"));
                sd_gb_tlabel(b, MP "endpointslice_port_protocol", s_of(port, "protocol"));
                sd_gb_tlabel(b, MP "endpointslice_port", num);
                sd_gb_tlabel(b, MP "endpointslice_port_app_protocol", s_of(port, "appProtocol"));
                sd_gb_tlabel(b, MP "endpointslice_endpoint_conditions_ready", bool_of(conds, "ready"));
                sd_gb_tlabel(b, MP "endpointslice_endpoint_conditions_serving", bool_of(conds, "serving"));
                sd_gb_tlabel(b, MP "endpointslice_endpoint_conditions_terminating",
                             bool_of(conds, "terminating"));
                sd_gb_tlabel(b, MP "endpointslice_endpoint_hostname", s_of(ep, "hostname"));
                if (ref) {
                    sd_gb_tlabel(b, MP "endpointslice_address_target_kind", s_of(ref, "kind"));
                    sd_gb_tlabel(b, MP "endpointslice_address_target_name", s_of(ref, "name"));
                }
                sd_gb_tlabel(b, MP "endpointslice_endpoint_node_name", s_of(ep, "nodeName"));
                sd_gb_tlabel(b, MP "endpointslice_endpoint_zone", s_of(ep, "zone"));
                for (size_t t = 0; topo && t < topo->n; t++)
                    if (topo->kids[t].type == JSON_STR) {
                        sd_gb_tlabel_san(b, MP "endpointslice_endpoint_topology_", topo->keys[t],
                                         topo->kids[t].str);
                        sd_gb_tlabel_san(b, MP "endpointslice_endpoint_topology_present_", topo->keys[t],
                                         "true");
                    }
                endpoint_refs(b, c, a, s_of(ep, "nodeName"), ref, ns, port, num, seen, &nseen);
            }
        }
    }
    if (seen)
        unseen_ports(b, seen, nseen);
    free(seen);
    return done(b, source("endpointslice", md, 1));
}

/* ---- ingress ---------------------------------------------------------------------------- */

/* Whether host matches one of the TLS hosts (a "*.x" pattern matching one label). */
static int tls_host(const json_val *tls, const char *host) {
    for (size_t i = 0; tls && i < tls->n; i++) {
        const json_val *hs = arr_of(&tls->kids[i], "hosts");
        for (size_t j = 0; hs && j < hs->n; j++) {
            if (hs->kids[j].type != JSON_STR)
                continue;
            const char *p = hs->kids[j].str;
            if (!strcmp(p, host))
                return 1;
            const char *dot = strchr(host, '.');
            if (p[0] == '*' && p[1] == '.' && dot && !strcmp(p + 1, dot))
                return 1;
        }
    }
    return 0;
}

static sd_tg *build_ingress(const json_val *o, sd_gb *b) {
    const json_val *md = obj_of(o, "metadata"), *spec = obj_of(o, "spec");
    sd_gb_label(b, MP "ingress_name", s_of(md, "name"));
    sd_gb_label(b, MP "namespace", s_of(md, "namespace"));
    sd_gb_label(b, MP "ingress_class_name", s_of(spec, "ingressClassName"));
    meta_maps(b, md, "ingress", 0);
    const json_val *rules = arr_of(spec, "rules"), *tls = arr_of(spec, "tls");
    for (size_t r = 0; rules && r < rules->n; r++) {
        const char *host = s_of(&rules->kids[r], "host");
        const char *scheme = tls_host(tls, host) ? "https" : "http";
        const json_val *paths = arr_of(obj_of(&rules->kids[r], "http"), "paths");
        size_t np = paths ? paths->n : 0;
        for (size_t i = 0; i < (np ? np : 1); i++) {
            const char *path = np ? s_of(&paths->kids[i], "path") : "";
            sd_gb_target(b, host);
            sd_gb_tlabel(b, MP "ingress_scheme", scheme);
            sd_gb_tlabel(b, MP "ingress_host", host);
            sd_gb_tlabel(b, MP "ingress_path", *path ? path : "/");
        }
    }
    return done(b, source("ingress", md, 1));
}

/* ---- the entry --------------------------------------------------------------------------- */

int sd_kube_build(const char *role, const json_val *obj, const sd_kube_ctx *ctx, sd_gb *b, arena *a,
                  sd_tg **out) {
    *out = NULL;
    sd_gb_reset(b);
    if (!obj || obj->type != JSON_OBJ || !obj_of(obj, "metadata") || !*s_of(obj_of(obj, "metadata"), "name"))
        return KILN_EINVAL;
    const char *ns = s_of(obj_of(obj, "metadata"), "namespace");
    const json_val *nso = ctx && ctx->attach_namespace && ctx->ns && *ns ? ctx->ns(ctx->data, ns, a) : NULL;
    if (nso) /* attach_metadata.namespace: the namespace's labels and annotations on every target */
        meta_maps(b, obj_of(nso, "metadata"), "namespace", 0);
    if (!strcmp(role, "node"))
        *out = build_node(obj, b);
    else if (!strcmp(role, "pod"))
        *out = build_pod(obj, ctx, b, a);
    else if (!strcmp(role, "service"))
        *out = build_service(obj, b);
    else if (!strcmp(role, "endpoints"))
        *out = build_endpoints(obj, ctx, b, a);
    else if (!strcmp(role, "endpointslice"))
        *out = build_endpointslice(obj, ctx, b, a);
    else if (!strcmp(role, "ingress"))
        *out = build_ingress(obj, b);
    else
        return KILN_EINVAL;
    return *out ? 0 : KILN_ENOMEM;
}

char *sd_kube_source(const char *role, const char *ns, const char *name) {
    const char *prefix = !strcmp(role, "service") ? "svc" : role;
    size_t n = strlen(prefix) + strlen(ns) + strlen(name) + 3;
    char *s = malloc(n);
    if (s) {
        if (!strcmp(role, "node"))
            snprintf(s, n, "%s/%s", prefix, name);
        else
            snprintf(s, n, "%s/%s/%s", prefix, ns, name);
    }
    return s;
}

int sd_kube_event(const char *line, size_t len, arena *a, int *type, const json_val **obj, long *code,
                  kiln_err *err) {
    static const char *const types[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};
    json_val *ev = NULL;
    *type = 0;
    *obj = NULL;
    *code = 0;
    int rc = json_parse(line, len, a, &ev, err);
    if (rc != 0)
        return rc;
    const char *t = json_get_str(ev, "type");
    for (int i = 0; t && i < 5; i++)
        if (!strcmp(t, types[i]))
            *type = i + 1;
    const json_val *o = obj_of(ev, "object");
    if (!*type || !o)
        return kiln_err_set(err, KILN_EINVAL, "watch event: expected a type and an object");
    if (*type == SD_KUBE_ERROR) {
        const json_val *c = json_get(o, "code");
        *code = c && c->type == JSON_NUM ? (long)c->num : 0;
    } else if (!obj_of(o, "metadata")) {
        return kiln_err_set(err, KILN_EINVAL, "watch event: the object has no metadata");
    }
    *obj = o;
    return 0;
}
