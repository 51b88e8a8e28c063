/*
 * test_sd_kube.c - Kubernetes SD's meta-label mapping of each role
 * (scrape/sd_kube_roles.c) from API objects as JSON, with the lookups of
 * referred objects (nodes, services, pods) answered from fixtures, and the
 * watch-event decoder.
 */
#include <string.h>

#include "scrape/sd.h"
#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

static const char *const NODE = "{\"metadata\":{\"name\":\"n1\",\"labels\":{\"kubernetes.io/"
                                "os\":\"linux\"},\"annotations\":{\"a.b/c\":\"d\"}},"
                                "\"spec\":{\"providerID\":\"gce://p/n1\"},"
                                "\"status\":{\"addresses\":[{\"type\":\"Hostname\",\"address\":\"n1\"},{"
                                "\"type\":\"ExternalIP\",\"address\":"
                                "\"203.0.113.1\"},{\"type\":\"InternalIP\",\"address\":\"10.0.0.1\"},{"
                                "\"type\":\"InternalIP\",\"address\":"
                                "\"10.0.0.2\"}],\"daemonEndpoints\":{\"kubeletEndpoint\":{\"Port\":10250}},"
                                "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"},{\"type\":"
                                "\"DiskPressure\",\"status\":\"Unknown\"}]}}";

static const char *const POD =
    "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"ns\",\"uid\":\"u1\",\"labels\":{\"app.kubernetes.io/"
    "name\":\"web\"},\"annotations\":{\"x\":\"y\"},\"ownerReferences\":[{\"kind\":\"Node\",\"name\":\"no\"},{"
    "\"kind\":\"ReplicaSet\",\"name\":\"rs\",\"controller\":true}]},"
    "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"c1\",\"image\":\"i1\",\"ports\":[{\"name\":"
    "\"http\","
    "\"containerPort\":8080,\"protocol\":\"TCP\"},{\"containerPort\":9090,\"protocol\":\"UDP\"}]},"
    "{\"name\":\"c2\",\"image\":\"i2\"}],\"initContainers\":[{\"name\":\"init\",\"image\":\"i3\"}]},"
    "\"status\":{\"phase\":\"Running\",\"podIP\":\"fd00::5\",\"hostIP\":\"10.0.0.1\",\"conditions\":[{"
    "\"type\":"
    "\"Ready\",\"status\":\"False\"}],\"containerStatuses\":[{\"name\":\"c1\",\"containerID\":\"docker://"
    "abc\"}],"
    "\"initContainerStatuses\":[{\"name\":\"init\",\"containerID\":\"docker://i\"}]}}";

static const char *const SERVICE =
    "{\"metadata\":{\"name\":\"web\",\"namespace\":\"ns\",\"labels\":{\"tier\":\"a\"}},"
    "\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":\"10.96.0.1\",\"loadBalancerIP\":\"1.1.1.1\","
    "\"ports\":[{"
    "\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\"}]},"
    "\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"192.0.2.1\"},{\"hostname\":\"lb.example\"}]}}}";

static arena fixtures;

static const json_val *parse_fixture(const char *s) {
    json_val *v = NULL;
    ck_assert_int_eq(json_parse(s, strlen(s), &fixtures, &v, NULL), 0);
    return v;
}

static const json_val *find_node(void *data, const char *name, arena *a) {
    (void)data;
    (void)a;
    return strcmp(name, "n1") ? NULL : parse_fixture(NODE);
}

static const json_val *find_service(void *data, const char *ns, const char *name, arena *a) {
    (void)data;
    (void)a;
    return strcmp(ns, "ns") || strcmp(name, "web") ? NULL : parse_fixture(SERVICE);
}

static const json_val *find_pod(void *data, const char *ns, const char *name, arena *a) {
    (void)data;
    (void)a;
    return strcmp(ns, "ns") || strcmp(name, "web-1") ? NULL : parse_fixture(POD);
}

static const json_val *find_ns(void *data, const char *name, arena *a) {
    (void)data;
    (void)a;
    return strcmp(name, "ns")
               ? NULL
               : parse_fixture("{\"metadata\":{\"name\":\"ns\",\"labels\":{\"team.io/name\":\"a\"},"
                               "\"annotations\":{\"owner\":\"ops\"}}}");
}

/* The owners: ReplicaSet rs (of Deployment web), Job j1 (of CronJob nightly),
 * Job j2 (no controller), ReplicaSet bare (no controller). */
static const json_val *find_owner(void *data, const char *resource, const char *ns, const char *name,
                                  arena *a) {
    (void)data;
    (void)a;
    if (strcmp(ns, "ns") != 0)
        return NULL;
    if (!strcmp(resource, "replicasets") && !strcmp(name, "rs"))
        return parse_fixture("{\"metadata\":{\"name\":\"rs\",\"namespace\":\"ns\",\"ownerReferences\":[{"
                             "\"kind\":\"Deployment\",\"name\":\"web\",\"controller\":true}]}}");
    if (!strcmp(resource, "replicasets") && !strcmp(name, "bare"))
        return parse_fixture("{\"metadata\":{\"name\":\"bare\",\"namespace\":\"ns\"}}");
    if (!strcmp(resource, "jobs") && !strcmp(name, "j1"))
        return parse_fixture("{\"metadata\":{\"name\":\"j1\",\"namespace\":\"ns\",\"ownerReferences\":[{"
                             "\"kind\":\"Deployment\",\"name\":\"no\"},{\"kind\":\"CronJob\",\"name\":"
                             "\"nightly\",\"controller\":true}]}}");
    if (!strcmp(resource, "jobs") && !strcmp(name, "j2"))
        return parse_fixture("{\"metadata\":{\"name\":\"j2\",\"namespace\":\"ns\"}}");
    return NULL;
}

/* attach: 1 attach_metadata.node, 2 .namespace, 4 .deployment, 8 .job, 16 .cronjob */
static sd_tg *build(const char *role, const char *json, int attach) {
    arena_init(&fixtures, 0);
    arena a;
    arena_init(&a, 0);
    sd_gb b;
    sd_gb_init(&b);
    sd_kube_ctx ctx = {.node = find_node,
                       .service = find_service,
                       .pod = find_pod,
                       .attach_node = attach & 1,
                       .ns = find_ns,
                       .attach_namespace = (attach & 2) != 0,
                       .owner = find_owner,
                       .attach_deployment = (attach & 4) != 0,
                       .attach_job = (attach & 8) != 0,
                       .attach_cronjob = (attach & 16) != 0};
    json_val *o = NULL;
    ck_assert_int_eq(json_parse(json, strlen(json), &a, &o, NULL), 0);
    sd_tg *g = NULL;
    ck_assert_int_eq(sd_kube_build(role, o, &ctx, &b, &a, &g), 0);
    sd_gb_free(&b);
    arena_free(&a);
    arena_free(&fixtures);
    return g;
}

static const char *gl(const sd_tg *g, const char *name) {
    return labels_get(g->ls, g->nls, name);
}

static const char *tl(const sd_tg *g, size_t i, const char *name) {
    return labels_get(g->t[i].ls, g->t[i].n, name);
}

/* The target whose address is addr. */
static size_t at(const sd_tg *g, const char *addr) {
    for (size_t i = 0; i < g->nt; i++)
        if (!strcmp(tl(g, i, "__address__"), addr))
            return i;
    ck_abort_msg("no target %s", addr);
    return 0;
}

#define MP "__meta_kubernetes_"

START_TEST(test_node) {
    sd_tg *g = build("node", NODE, 0);
    ck_assert_str_eq(g->source, "node/n1");
    ck_assert_str_eq(gl(g, MP "node_name"), "n1");
    ck_assert_str_eq(gl(g, MP "node_provider_id"), "gce://p/n1");
    ck_assert_str_eq(gl(g, MP "node_label_kubernetes_io_os"), "linux");
    ck_assert_str_eq(gl(g, MP "node_labelpresent_kubernetes_io_os"), "true");
    ck_assert_str_eq(gl(g, MP "node_annotation_a_b_c"), "d");
    ck_assert_str_eq(gl(g, MP "node_annotationpresent_a_b_c"), "true");
    ck_assert_str_eq(gl(g, MP "node_condition_ready"), "true");
    ck_assert_str_eq(gl(g, MP "node_condition_diskpressure"), "unknown");
    ck_assert_uint_eq(g->nt, 1);
    /* InternalIP first, whatever the order of the list */
    ck_assert_str_eq(tl(g, 0, "__address__"), "10.0.0.1:10250");
    ck_assert_str_eq(tl(g, 0, "instance"), "n1");
    ck_assert_str_eq(tl(g, 0, MP "node_address_InternalIP"), "10.0.0.1");
    ck_assert_str_eq(tl(g, 0, MP "node_address_ExternalIP"), "203.0.113.1");
    ck_assert_str_eq(tl(g, 0, MP "node_address_Hostname"), "n1");
    sd_tg_unref(g);
}
END_TEST

START_TEST(test_pod) {
    sd_tg *g = build("pod", POD, 1);
    ck_assert_str_eq(g->source, "pod/ns/web-1");
    ck_assert_str_eq(gl(g, MP "namespace"), "ns");
    ck_assert_str_eq(gl(g, MP "pod_name"), "web-1");
    ck_assert_str_eq(gl(g, MP "pod_ip"), "fd00::5");
    ck_assert_str_eq(gl(g, MP "pod_ready"), "false");
    ck_assert_str_eq(gl(g, MP "pod_phase"), "Running");
    ck_assert_str_eq(gl(g, MP "pod_node_name"), "n1");
    ck_assert_str_eq(gl(g, MP "pod_host_ip"), "10.0.0.1");
    ck_assert_str_eq(gl(g, MP "pod_uid"), "u1");
    ck_assert_str_eq(gl(g, MP "pod_controller_kind"), "ReplicaSet");
    ck_assert_str_eq(gl(g, MP "pod_controller_name"), "rs");
    ck_assert_str_eq(gl(g, MP "pod_label_app_kubernetes_io_name"), "web");
    ck_assert_str_eq(gl(g, MP "pod_labelpresent_app_kubernetes_io_name"), "true");
    ck_assert_str_eq(gl(g, MP "pod_annotation_x"), "y");
    /* attach_metadata.node: the node's name and labels on the group */
    ck_assert_str_eq(gl(g, MP "node_name"), "n1");
    ck_assert_str_eq(gl(g, MP "node_label_kubernetes_io_os"), "linux");
    ck_assert_ptr_null(gl(g, MP "node_annotation_a_b_c"));
    ck_assert_uint_eq(g->nt, 4);
    size_t i = at(g, "[fd00::5]:8080");
    ck_assert_str_eq(tl(g, i, MP "pod_container_name"), "c1");
    ck_assert_str_eq(tl(g, i, MP "pod_container_id"), "docker://abc");
    ck_assert_str_eq(tl(g, i, MP "pod_container_image"), "i1");
    ck_assert_str_eq(tl(g, i, MP "pod_container_port_name"), "http");
    ck_assert_str_eq(tl(g, i, MP "pod_container_port_number"), "8080");
    ck_assert_str_eq(tl(g, i, MP "pod_container_port_protocol"), "TCP");
    ck_assert_str_eq(tl(g, i, MP "pod_container_init"), "false");
    i = at(g, "[fd00::5]:9090");
    ck_assert_ptr_null(tl(g, i, MP "pod_container_port_name"));
    ck_assert_str_eq(tl(g, i, MP "pod_container_port_protocol"), "UDP");
    /* containers without ports: the pod IP alone, init containers marked */
    ck_assert_uint_eq(g->t[2].n + g->t[3].n > 0, 1);
    ck_assert_str_eq(tl(g, 2, "__address__"), "fd00::5");
    ck_assert_str_eq(tl(g, 2, MP "pod_container_name"), "c2");
    ck_assert_ptr_null(tl(g, 2, MP "pod_container_id"));
    ck_assert_str_eq(tl(g, 3, MP "pod_container_name"), "init");
    ck_assert_str_eq(tl(g, 3, MP "pod_container_init"), "true");
    ck_assert_str_eq(tl(g, 3, MP "pod_container_id"), "docker://i");
    sd_tg_unref(g);
    /* without attach_metadata, no node labels; without an IP, no target */
    g = build("pod", POD, 0);
    ck_assert_ptr_null(gl(g, MP "node_name"));
    sd_tg_unref(g);
    g = build("pod", "{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"},\"status\":{\"phase\":\"Pending\"}}",
              0);
    ck_assert_str_eq(g->source, "pod/n/p");
    ck_assert_uint_eq(g->nt, 0);
    sd_tg_unref(g);
}
END_TEST

/* attach_metadata.namespace: the namespace's labels and annotations on the
 * group of a namespaced object, nothing on a node's */
START_TEST(test_namespace_metadata) {
    static const char *const roles[] = {"pod", "service"};
    for (size_t r = 0; r < 2; r++) {
        sd_tg *g = build(roles[r], r ? SERVICE : POD, 2);
        ck_assert_str_eq(gl(g, MP "namespace_label_team_io_name"), "a");
        ck_assert_str_eq(gl(g, MP "namespace_labelpresent_team_io_name"), "true");
        ck_assert_str_eq(gl(g, MP "namespace_annotation_owner"), "ops");
        ck_assert_str_eq(gl(g, MP "namespace_annotationpresent_owner"), "true");
        ck_assert_ptr_null(gl(g, MP "node_name")); /* not attach_metadata.node */
        sd_tg_unref(g);
        g = build(roles[r], r ? SERVICE : POD, 0);
        ck_assert_ptr_null(gl(g, MP "namespace_label_team_io_name"));
        sd_tg_unref(g);
    }
    sd_tg *g = build("node", NODE, 3);
    ck_assert_ptr_null(gl(g, MP "namespace_label_team_io_name"));
    sd_tg_unref(g);
}
END_TEST

/* A pod owned by kind/name (the controller), in namespace ns. */
static sd_tg *owned_pod(const char *ns, const char *kind, const char *name, int attach) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"metadata\":{\"name\":\"p\",\"namespace\":\"%s\",\"ownerReferences\":[{\"kind\":\"%s\","
             "\"name\":\"%s\",\"controller\":true}]},\"status\":{\"podIP\":\"10.1.0.1\"}}",
             ns, kind, name);
    return build("pod", json, attach);
}

/* attach_metadata.deployment, .job, .cronjob: pod -> ReplicaSet ->
 * Deployment, pod -> Job -> CronJob, each only when asked for and known */
START_TEST(test_owner_metadata) {
    sd_tg *g = owned_pod("ns", "ReplicaSet", "rs", 4 | 8 | 16);
    ck_assert_str_eq(gl(g, MP "pod_deployment_name"), "web");
    ck_assert_str_eq(gl(g, MP "pod_controller_name"), "rs");
    ck_assert_ptr_null(gl(g, MP "pod_job_name"));
    ck_assert_ptr_null(gl(g, MP "pod_cronjob_name"));
    sd_tg_unref(g);
    g = build("pod", POD, 4); /* the fixture's controller is ReplicaSet rs */
    ck_assert_str_eq(gl(g, MP "pod_deployment_name"), "web");
    sd_tg_unref(g);
    g = owned_pod("ns", "ReplicaSet", "rs", 8 | 16); /* not asked for */
    ck_assert_ptr_null(gl(g, MP "pod_deployment_name"));
    sd_tg_unref(g);
    g = owned_pod("ns", "ReplicaSet", "bare", 4); /* a ReplicaSet of no Deployment */
    ck_assert_ptr_null(gl(g, MP "pod_deployment_name"));
    sd_tg_unref(g);
    g = owned_pod("ns", "ReplicaSet", "gone", 4); /* a ReplicaSet not known (yet) */
    ck_assert_ptr_null(gl(g, MP "pod_deployment_name"));
    sd_tg_unref(g);
    g = owned_pod("other", "ReplicaSet", "rs", 4); /* the owner is in the pod's namespace */
    ck_assert_ptr_null(gl(g, MP "pod_deployment_name"));
    sd_tg_unref(g);

    g = owned_pod("ns", "Job", "j1", 4 | 8 | 16);
    ck_assert_str_eq(gl(g, MP "pod_job_name"), "j1");
    ck_assert_str_eq(gl(g, MP "pod_cronjob_name"), "nightly");
    ck_assert_ptr_null(gl(g, MP "pod_deployment_name"));
    sd_tg_unref(g);
    g = owned_pod("ns", "Job", "j1", 8);
    ck_assert_str_eq(gl(g, MP "pod_job_name"), "j1");
    ck_assert_ptr_null(gl(g, MP "pod_cronjob_name"));
    sd_tg_unref(g);
    g = owned_pod("ns", "Job", "j1", 16);
    ck_assert_ptr_null(gl(g, MP "pod_job_name"));
    ck_assert_str_eq(gl(g, MP "pod_cronjob_name"), "nightly");
    sd_tg_unref(g);
    g = owned_pod("ns", "Job", "j2", 8 | 16); /* a Job of no CronJob */
    ck_assert_str_eq(gl(g, MP "pod_job_name"), "j2");
    ck_assert_ptr_null(gl(g, MP "pod_cronjob_name"));
    sd_tg_unref(g);
    g = owned_pod("ns", "Job", "gone", 8 | 16); /* a Job not known (yet) */
    ck_assert_ptr_null(gl(g, MP "pod_job_name"));
    ck_assert_ptr_null(gl(g, MP "pod_cronjob_name"));
    sd_tg_unref(g);
    g = owned_pod("ns", "Job", "j1", 0);
    ck_assert_ptr_null(gl(g, MP "pod_job_name"));
    ck_assert_ptr_null(gl(g, MP "pod_cronjob_name"));
    sd_tg_unref(g);
}
END_TEST

START_TEST(test_service) {
    sd_tg *g = build("service", SERVICE, 0);
    ck_assert_str_eq(g->source, "svc/ns/web");
    ck_assert_str_eq(gl(g, MP "service_name"), "web");
    ck_assert_str_eq(gl(g, MP "namespace"), "ns");
    ck_assert_str_eq(gl(g, MP "service_label_tier"), "a");
    ck_assert_uint_eq(g->nt, 1);
    ck_assert_str_eq(tl(g, 0, "__address__"), "web.ns.svc:80");
    ck_assert_str_eq(tl(g, 0, MP "service_port_name"), "http");
    ck_assert_str_eq(tl(g, 0, MP "service_port_number"), "80");
    ck_assert_str_eq(tl(g, 0, MP "service_port_protocol"), "TCP");
    ck_assert_str_eq(tl(g, 0, MP "service_type"), "LoadBalancer");
    ck_assert_str_eq(tl(g, 0, MP "service_cluster_ip"), "10.96.0.1");
    ck_assert_str_eq(tl(g, 0, MP "service_loadbalancer_ip"), "192.0.2.1,lb.example");
    sd_tg_unref(g);
    g = build("service",
              "{\"metadata\":{\"name\":\"ext\",\"namespace\":\"ns\"},\"spec\":{\"type\":\"ExternalName\","
              "\"externalName\":\"db.example\",\"ports\":[{\"port\":5432}]}}",
              0);
    ck_assert_str_eq(tl(g, 0, MP "service_external_name"), "db.example");
    ck_assert_ptr_null(tl(g, 0, MP "service_cluster_ip"));
    sd_tg_unref(g);
}
END_TEST

START_TEST(test_endpoints) {
    sd_tg *g =
        build("endpoints",
              "{\"metadata\":{\"name\":\"web\",\"namespace\":\"ns\",\"labels\":{\"e\":\"1\"}},\"subsets\":[{"
              "\"addresses\":[{\"ip\":\"fd00::5\",\"hostname\":\"h\",\"nodeName\":\"n1\",\"targetRef\":{"
              "\"kind\":\"Pod\",\"name\":\"web-1\",\"namespace\":\"ns\"}}],"
              "\"notReadyAddresses\":[{\"ip\":\"10.9.9.9\"}],"
              "\"ports\":[{\"name\":\"web\",\"port\":8080,\"protocol\":\"TCP\"}]}]}",
              1);
    ck_assert_str_eq(g->source, "endpoints/ns/web");
    ck_assert_str_eq(gl(g, MP "endpoints_name"), "web");
    ck_assert_str_eq(gl(g, MP "endpoints_label_e"), "1");
    ck_assert_str_eq(gl(g, MP "service_name"), "web"); /* the service's labels */
    ck_assert_str_eq(gl(g, MP "service_label_tier"), "a");
    ck_assert_uint_eq(g->nt, 3);
    size_t i = at(g, "[fd00::5]:8080");
    ck_assert_str_eq(tl(g, i, MP "endpoint_ready"), "true");
    ck_assert_str_eq(tl(g, i, MP "endpoint_port_name"), "web");
    ck_assert_str_eq(tl(g, i, MP "endpoint_port_protocol"), "TCP");
    ck_assert_str_eq(tl(g, i, MP "endpoint_hostname"), "h");
    ck_assert_str_eq(tl(g, i, MP "endpoint_node_name"), "n1");
    ck_assert_str_eq(tl(g, i, MP "endpoint_address_target_kind"), "Pod");
    ck_assert_str_eq(tl(g, i, MP "endpoint_address_target_name"), "web-1");
    ck_assert_str_eq(tl(g, i, MP "pod_name"), "web-1");
    ck_assert_str_eq(tl(g, i, MP "pod_container_name"), "c1");
    ck_assert_str_eq(tl(g, i, MP "pod_container_port_name"), "http");
    ck_assert_str_eq(tl(g, i, MP "node_label_kubernetes_io_os"), "linux"); /* attach_metadata.node */
    i = at(g, "10.9.9.9:8080");
    ck_assert_str_eq(tl(g, i, MP "endpoint_ready"), "false");
    ck_assert_ptr_null(tl(g, i, MP "pod_name"));
    /* the pod's port no endpoint port covers */
    i = at(g, "[fd00::5]:9090");
    ck_assert_ptr_null(tl(g, i, MP "endpoint_ready"));
    ck_assert_str_eq(tl(g, i, MP "pod_container_port_number"), "9090");
    ck_assert_str_eq(tl(g, i, MP "pod_container_port_protocol"), "UDP");
    ck_assert_str_eq(tl(g, i, MP "pod_name"), "web-1");
    sd_tg_unref(g);
}
END_TEST

START_TEST(test_endpointslice) {
    sd_tg *g = build(
        "endpointslice",
        "{\"metadata\":{\"name\":\"web-abc\",\"namespace\":\"ns\",\"labels\":{\"kubernetes.io/"
        "service-name\":\"web\"}},\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"10.0.0.7\"],"
        "\"conditions\":{\"ready\":true,\"serving\":true,\"terminating\":false},\"hostname\":\"h\","
        "\"nodeName\":\"n1\",\"zone\":\"z\",\"deprecatedTopology\":{\"topology.kubernetes.io/zone\":\"z\"},"
        "\"targetRef\":{\"kind\":\"Pod\",\"name\":\"other\"}}],"
        "\"ports\":[{\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\",\"appProtocol\":\"http\"}]}",
        0);
    ck_assert_str_eq(g->source, "endpointslice/ns/web-abc");
    ck_assert_str_eq(gl(g, MP "endpointslice_name"), "web-abc");
    ck_assert_str_eq(gl(g, MP "endpointslice_address_type"), "IPv4");
    ck_assert_str_eq(gl(g, MP "endpointslice_label_kubernetes_io_service_name"), "web");
    ck_assert_str_eq(gl(g, MP "service_name"), "web");
    ck_assert_uint_eq(g->nt, 1);
    ck_assert_str_eq(tl(g, 0, "__address__"), "10.0.0.7:80");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_port"), "80");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_port_name"), "http");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_port_protocol"), "TCP");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_port_app_protocol"), "http");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_endpoint_conditions_ready"), "true");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_endpoint_conditions_serving"), "true");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_endpoint_conditions_terminating"), "false");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_endpoint_hostname"), "h");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_endpoint_node_name"), "n1");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_endpoint_zone"), "z");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_endpoint_topology_topology_kubernetes_io_zone"), "z");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_endpoint_topology_present_topology_kubernetes_io_zone"),
                     "true");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_address_target_kind"), "Pod");
    ck_assert_str_eq(tl(g, 0, MP "endpointslice_address_target_name"), "other");
    ck_assert_ptr_null(tl(g, 0, MP "pod_name")); /* a pod the lookups do not know */
    sd_tg_unref(g);
}
END_TEST

START_TEST(test_ingress) {
    sd_tg *g = build(
        "ingress",
        "{\"metadata\":{\"name\":\"site\",\"namespace\":\"ns\",\"annotations\":{\"k\":\"v\"}},"
        "\"spec\":{\"ingressClassName\":\"nginx\",\"tls\":[{\"hosts\":[\"*.example.com\",\"x.org\"]}],"
        "\"rules\":[{\"host\":\"a.example.com\",\"http\":{\"paths\":[{\"path\":\"/a\"},{\"path\":\"\"}]}},"
        "{\"host\":\"b.c.example.com\"},{\"host\":\"x.org\"}]}}",
        0);
    ck_assert_str_eq(g->source, "ingress/ns/site");
    ck_assert_str_eq(gl(g, MP "ingress_name"), "site");
    ck_assert_str_eq(gl(g, MP "ingress_class_name"), "nginx");
    ck_assert_str_eq(gl(g, MP "ingress_annotation_k"), "v");
    ck_assert_uint_eq(g->nt, 4);
    ck_assert_str_eq(tl(g, 0, "__address__"), "a.example.com");
    ck_assert_str_eq(tl(g, 0, MP "ingress_scheme"), "https");
    ck_assert_str_eq(tl(g, 0, MP "ingress_path"), "/a");
    ck_assert_str_eq(tl(g, 0, MP "ingress_host"), "a.example.com");
    ck_assert_str_eq(tl(g, 1, MP "ingress_path"), "/");
    /* "*.example.com" matches one label only */
    ck_assert_str_eq(tl(g, 2, MP "ingress_scheme"), "http");
    ck_assert_str_eq(tl(g, 2, MP "ingress_path"), "/");
    ck_assert_str_eq(tl(g, 3, MP "ingress_scheme"), "https");
    sd_tg_unref(g);
}
END_TEST

START_TEST(test_bad_objects) {
    arena a;
    arena_init(&a, 0);
    sd_gb b;
    sd_gb_init(&b);
    sd_tg *g = NULL;
    json_val *o = NULL;
    ck_assert_int_eq(json_parse("{\"metadata\":{}}", 15, &a, &o, NULL), 0);
    ck_assert_int_eq(sd_kube_build("pod", o, NULL, &b, &a, &g), KILN_EINVAL);
    ck_assert_int_eq(json_parse("{\"metadata\":{\"name\":\"x\"}}", 25, &a, &o, NULL), 0);
    ck_assert_int_eq(sd_kube_build("deployment", o, NULL, &b, &a, &g), KILN_EINVAL);
    ck_assert_ptr_null(g);
    sd_gb_free(&b);
    arena_free(&a);
    char *s = sd_kube_source("service", "ns", "x");
    ck_assert_str_eq(s, "svc/ns/x");
    free(s);
}
END_TEST

START_TEST(test_watch_events) {
    arena a;
    arena_init(&a, 0);
    int type;
    const json_val *o;
    long code;
    kiln_err err = {0};
    const char *added =
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\",\"resourceVersion\":\"7\"}}}";
    ck_assert_int_eq(sd_kube_event(added, strlen(added), &a, &type, &o, &code, &err), 0);
    ck_assert_int_eq(type, SD_KUBE_ADDED);
    ck_assert_str_eq(json_get_str(json_get(o, "metadata"), "resourceVersion"), "7");
    /* the object's place in the line: kept as the store's text */
    ck_assert_int_eq(added[o->off], '{');
    ck_assert_int_eq(added[o->end - 1], '}');
    const char *gone =
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}}";
    ck_assert_int_eq(sd_kube_event(gone, strlen(gone), &a, &type, &o, &code, &err), 0);
    ck_assert_int_eq(type, SD_KUBE_ERROR);
    ck_assert_int_eq(code, 410);
    const char *bm = "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}";
    ck_assert_int_eq(sd_kube_event(bm, strlen(bm), &a, &type, &o, &code, &err), 0);
    ck_assert_int_eq(type, SD_KUBE_BOOKMARK);
    static const char *const bad[] = {
        "{\"type\":\"ADDED\"}", "{\"type\":\"NOPE\",\"object\":{\"metadata\":{}}}",
        "{\"type\":\"DELETED\",\"object\":{}}", "{\"type\":\"ADDED\",\"object\":{\"meta", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(sd_kube_event(bad[i], strlen(bad[i]), &a, &type, &o, &code, &err), KILN_EINVAL);
    arena_free(&a);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("sd_kube");
    TCase *tc = tcase_create("sd_kube");
    tcase_add_test(tc, test_node);
    tcase_add_test(tc, test_pod);
    tcase_add_test(tc, test_namespace_metadata);
    tcase_add_test(tc, test_owner_metadata);
    tcase_add_test(tc, test_service);
    tcase_add_test(tc, test_endpoints);
    tcase_add_test(tc, test_endpointslice);
    tcase_add_test(tc, test_ingress);
    tcase_add_test(tc, test_bad_objects);
    tcase_add_test(tc, test_watch_events);
    suite_add_tcase(s, tc);
    return s;
}
