// Package notify is the part of respawner's notifier plugins (notify-webhook,
// notify-email) that does not depend on where a notification goes: which
// events to tell about, coalescing a crash loop into digests, and delivery
// off the event path with a bounded queue, timeouts, retries with backoff and
// a flush before the plugin exits.
//
// A plugin is a Plugin (NewPlugin): its Build reads the options into a
// Config (ParseOptions plus the plugin's own) and a Sender that turns a
// Message into one request or mail. Plugin.Configure starts a Dispatcher;
// Notify hands it each event and never blocks; the plugin's main calls
// Plugin.Close after hooks.Serve returns.
//
// # Coalescing
//
// The first selected event goes out at once and opens a window (Config.Window,
// 5m by default). Selected events that arrive while it is open are gathered
// into one Digest, sent when the window ends; a digest sent opens the next
// window, so a crash loop sends one message per window. Urgent kinds (gave-up
// and held) go out at once and never open a window. gave-up and stopped end
// the window: a pending digest is sent at once, before them.
//
// # Delivery
//
// Notify appends to a queue of Config.Queue events; when it is full the
// oldest event is dropped, counted (Stats, the next Digest's Dropped) and
// logged; messages waiting for a receiver that is down are bounded the same
// way (the one being retried stays). One goroutine coalesces and delivers, in order: each attempt has
// Config.Timeout; a failed one is retried after Config.Backoff, doubling up to
// a minute, Config.Retries times, while new events keep being gathered. Close
// sends what is pending and goes on retrying for at most Config.Grace, then
// logs what it could not deliver; an attempt under way when Close is called
// is cancelled (its context) at the end of the grace period too. respawner-hookhost kills a plugin 2 s
// after asking it to stop, so Grace is at most MaxGrace.
package notify
