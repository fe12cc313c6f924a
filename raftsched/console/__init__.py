"""The web console (`raftsched console`, SPEC §11): a separate process, a client of the cluster.

It serves server-rendered pages that work without JavaScript, made live by a small hand-written
script (a short poll of each page's live region, and `WatchJob` relayed as server-sent events on
a job's page). It talks to the cluster only through the asyncio client, like any other client.

    config.py     ConsoleConfig: flags, RAFTSCHED_* environment and TOML, validated once
    server.py     run_console(): logging, the uvicorn server, Ctrl-C
    app.py        build_app(): routes, the lifespan (clients, sampler), the Console object
    clients.py    the console's own client and one client per signed-in token (bounded)
    sessions.py   sign-in with a cluster token, sessions, CSRF tokens, what a role may do
    guard.py      ASGI middleware: Host check and security headers (CSP) on every answer
    sampler.py    a once-a-second Status sample: leader changes, submit and finish rates
    queries.py    page-sized reads: a filtered page that follows short pages, dependents
    forms.py      job-submit form and list filters, parsed and checked
    words.py      schedules and durations in words
    fmt.py        template filters: times, ages, states, sparklines
    render.py     Jinja2 (autoescape on) and the full-page or live-region answer
    views/        one module per page group; actions.py for the POST forms; live.py for SSE
"""
