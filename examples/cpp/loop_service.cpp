// examples/cpp/loop_service.cpp: a C++17 service that runs a hub on its own
// libevent loop.
//
// The service owns an event_base (made thread-aware first: the hub's
// threads hand callbacks to it) and attaches the hub to it, so that the
// hub's callbacks run on the loop's thread, between the service's own
// events.  Every C handle lives in a std::unique_ptr with the matching
// free function as its deleter, declared in the order that makes the
// destruction order right: the base outlives the hub.
//
// Demo: subscribe to app:ticker, publish three ticks from a loop timer,
// stop the loop once all three came back, exit 0.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <event2/event.h>
#include <event2/thread.h>

#include <streamhub/streamhub.h>

namespace {

struct BaseDeleter {
    void operator()(event_base *b) const { event_base_free(b); }
};
struct EventDeleter {
    void operator()(event *e) const { event_free(e); }
};
struct ConfigDeleter {
    void operator()(sh_config_t *c) const { sh_config_free(c); }
};
struct HubDeleter {
    void operator()(sh_hub_t *h) const { sh_hub_close(h); }
};
using BasePtr = std::unique_ptr<event_base, BaseDeleter>;
using EventPtr = std::unique_ptr<event, EventDeleter>;
using ConfigPtr = std::unique_ptr<sh_config_t, ConfigDeleter>;
using HubPtr = std::unique_ptr<sh_hub_t, HubDeleter>;

constexpr int kTicks = 3;

struct Service {
    BasePtr base;
    HubPtr hub;                      // after base: closed before it
    EventPtr timer;
    sh_subscription_t *sub = nullptr; // valid until its final callback
    bool sub_ended = false;
    int published = 0;
    int received = 0;
    int status = 1;
};

// Runs on the loop's thread (the hub is attached).  Must not block.
void on_event(void *arg, const sh_event_t *ev, sh_err_t status)
{
    auto *svc = static_cast<Service *>(arg);

    if (status != SH_OK) {
        svc->sub_ended = true;       // the handle stays ours to free
        return;
    }
    std::printf("received #%llu %s %s\n",
                static_cast<unsigned long long>(sh_event_offset(ev)),
                sh_event_type(ev), sh_event_data(ev, nullptr));
    if (++svc->received == kTicks) {
        svc->status = 0;
        event_base_loopexit(svc->base.get(), nullptr);
    }
}

// A loop timer: publishing is a service call, fine on the loop here
// because the local bus does not wait on the store (a service call that
// may wait on the store belongs on a worker thread).
void on_tick(evutil_socket_t, short, void *arg)
{
    auto *svc = static_cast<Service *>(arg);
    char err[SH_ERRBUF_SIZE];
    std::string data = "{\"tick\":" + std::to_string(svc->published + 1) +
                       "}";

    if (sh_publish(svc->hub.get(), "app:ticker", "app.tick", data.data(),
                   data.size(), nullptr, err, sizeof err) != SH_OK) {
        std::fprintf(stderr, "loop_service: publish: %s\n", err);
        event_base_loopexit(svc->base.get(), nullptr);
        return;
    }
    if (++svc->published < kTicks) {
        timeval tv{0, 10 * 1000};
        evtimer_add(svc->timer.get(), &tv);
    }
}

bool fail(const char *what, const char *err)
{
    std::fprintf(stderr, "loop_service: %s: %s\n", what, err);
    return false;
}

bool setup(Service &svc)
{
    char err[SH_ERRBUF_SIZE];
    sh_config_t *raw_conf = nullptr;
    sh_hub_t *raw_hub = nullptr;

    if (evthread_use_pthreads() != 0)
        return fail("libevent", "no pthreads support");
    svc.base.reset(event_base_new());
    if (!svc.base)
        return fail("libevent", "event_base_new failed");
    if (sh_config_new(&raw_conf) != SH_OK)
        return fail("config", "out of memory");
    ConfigPtr conf(raw_conf);
    if (sh_config_set(conf.get(), "store", "sqlite::memory:", err,
                      sizeof err) != SH_OK ||
        sh_config_set(conf.get(), "log-level", "warn", err,
                      sizeof err) != SH_OK)
        return fail("config", err);
    // sh_hub_open() takes the config on success only.
    if (sh_hub_open(conf.get(), &raw_hub, err, sizeof err) != SH_OK)
        return fail("open", err);
    conf.release();
    svc.hub.reset(raw_hub);
    // Attach before any subscription.
    if (sh_hub_attach(svc.hub.get(), svc.base.get(), err,
                      sizeof err) != SH_OK)
        return fail("attach", err);
    if (sh_subscribe(svc.hub.get(), "app:ticker", nullptr, on_event, &svc,
                     &svc.sub, nullptr, err, sizeof err) != SH_OK)
        return fail("subscribe", err);
    svc.timer.reset(evtimer_new(svc.base.get(), on_tick, &svc));
    if (!svc.timer)
        return fail("libevent", "evtimer_new failed");
    timeval tv{0, 0};
    evtimer_add(svc.timer.get(), &tv);
    return true;
}

} // namespace

int main()
{
    Service svc;

    if (setup(svc)) {
        // A watchdog, so that a broken demo fails instead of hanging.
        timeval limit{10, 0};
        event_base_loopexit(svc.base.get(), &limit);
        event_base_dispatch(svc.base.get());
    }
    sh_subscription_free(svc.sub);  // ends it unless the bus did
    svc.timer.reset();  // before the base
    svc.hub.reset();    // sh_hub_close(): the final callback runs
    if (svc.status != 0)
        std::fprintf(stderr, "loop_service: received %d of %d\n",
                     svc.received, kTicks);
    return svc.status;
}
