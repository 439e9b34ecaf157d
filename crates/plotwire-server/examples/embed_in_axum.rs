//! plotwire inside another axum app (docs/library.md): the host has its own pages and a
//! login, and plotwire's routes hang off `/plots`, behind the host's login check. The
//! host publishes a dashboard in-process and streams into it from a tokio task, with no
//! HTTP in between, and stops gracefully on Ctrl-C or SIGTERM.
//!
//! ```sh
//! cargo run -p plotwire-server --example embed_in_axum -- --port 3000
//! # open http://127.0.0.1:3000/, log in, follow the link to the live plot
//! ```
//!
//! - `/` is the host's page; `/login` logs in (a form; its POST sets the `host_session`
//!   cookie) and `/logout` logs out.
//! - Everything under `/plots/` (pages, BokehJS, websockets, the REST API) answers
//!   401 Unauthorized without the cookie: the host's middleware runs before plotwire's
//!   routes, and plotwire serves nothing.
//! - The dashboard is `/plots/d/demo/live/`: a sine wave that grows by one point every
//!   100 ms, and a Reset button whose clicks reach the host as viewer events.
//!
//! `--port 0` (or `EMBED_PORT=0`) picks a free port; the address is printed as
//! `listening on http://127.0.0.1:<port>/`.

use std::future::IntoFuture;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use plotwire_server::body::float64_column;
use plotwire_server::{App, Config, Followed, Plotwire, Shutdown};
use rand::Rng;

const NAME: &str = "demo/live";
const SOURCE: &str = "wave";
const COOKIE: &str = "host_session";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The secret the login cookie carries, new at every start.
#[derive(Clone)]
struct Login {
    secret: String,
}

impl Login {
    /// Whether the request carries this run's login cookie.
    fn admits(&self, request: &Request) -> bool {
        let wanted = format!("{COOKIE}={}", self.secret);
        request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .any(|c| c.trim() == wanted)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let port = port()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();

    // plotwire hangs off /plots: the prefix is set here and the router, already under
    // it, is merged at the host's root.
    let config = Config::builder()
        .prefix("/plots")
        .port(port)
        .shutdown_grace(Duration::from_secs(5))
        .build()?;
    let grace = config.shutdown_grace;
    let App {
        router,
        shutdown,
        plotwire,
    } = plotwire_server::app(config)?;

    plotwire.publish_spec_json(NAME, SPEC.as_bytes()).await?;
    tokio::spawn(produce(plotwire.clone(), shutdown.clone()));
    tokio::spawn(listen(plotwire.clone()));

    let login = Login {
        secret: format!("{:032x}", rand::rng().random::<u128>()),
    };
    let plots = router.layer(axum::middleware::from_fn_with_state(
        login.clone(),
        require_login,
    ));
    let host = Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(log_in))
        .route("/logout", get(log_out))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .with_state(login)
        .merge(plots);

    println!("listening on http://127.0.0.1:{port}/");
    println!(
        "the dashboard: http://127.0.0.1:{port}{}",
        plotwire.url(NAME)
    );

    // The host's own graceful shutdown: on a signal, plotwire's websockets get close
    // 1001 and HTTP requests finish; whatever is still open after the grace is left.
    let trigger = shutdown.clone();
    let server = axum::serve(listener, host)
        .with_graceful_shutdown(async move {
            plotwire_server::stop_signal().await;
            println!("shutting down");
            trigger.begin();
        })
        .into_future();
    let deadline = async {
        shutdown.begun().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result?,
        () = deadline => println!("grace period over with requests still open"),
    }
    if !shutdown.drained(grace).await {
        println!("grace period over with websockets still open");
    }
    println!("stopped");
    Ok(())
}

/// `--port N`, else `EMBED_PORT`, else 3000.
fn port() -> Result<u16> {
    let mut args = std::env::args().skip(1);
    let mut port = std::env::var("EMBED_PORT").ok();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = Some(args.next().ok_or("--port needs a number")?),
            other => return Err(format!("unknown argument {other:?}; usage: --port N").into()),
        }
    }
    Ok(port.as_deref().unwrap_or("3000").parse()?)
}

/// The host's login check, in front of every plotwire route.
async fn require_login(State(login): State<Login>, request: Request, next: Next) -> Response {
    if login.admits(&request) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "log in first: /login").into_response()
    }
}

async fn home(State(login): State<Login>, request: Request) -> Html<String> {
    let body = if login.admits(&request) {
        format!(
            "<p>Logged in. <a id=\"plot\" href=\"/plots/d/{NAME}/\">The live plot</a> · \
             <a href=\"/logout\">Log out</a></p>"
        )
    } else {
        "<p><a href=\"/login\">Log in</a> to see the plots.</p>".to_owned()
    };
    Html(format!(
        "<!DOCTYPE html><html><head><title>Host app</title></head><body><h1>Host app</h1>{body}</body></html>"
    ))
}

async fn login_form() -> Html<&'static str> {
    Html(
        "<!DOCTYPE html><html><head><title>Log in</title></head><body>\
         <form method=\"post\" action=\"/login\"><button id=\"login\" type=\"submit\">Log in</button></form>\
         </body></html>",
    )
}

async fn log_in(State(login): State<Login>) -> Response {
    let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax", login.secret);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn log_out() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// Streams a point every 100 ms, in-process, until the shutdown begins.
async fn produce(plotwire: Plotwire, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.begun() => return,
        }
        let t = f64::from(n) / 10.0;
        n = n.wrapping_add(1);
        let columns = vec![
            ("t".to_owned(), float64_column(&[t])),
            ("y".to_owned(), float64_column(&[t.sin()])),
        ];
        if let Err(e) = plotwire.stream(NAME, SOURCE, columns, Some(600)).await {
            eprintln!("stream failed: {e}");
            return;
        }
    }
}

/// Prints what viewers do, and clears the plot when someone presses Reset.
async fn listen(plotwire: Plotwire) {
    let mut events = match plotwire.events(NAME, 0).await {
        Ok(events) => events,
        Err(e) => {
            eprintln!("no events: {e}");
            return;
        }
    };
    while let Some(item) = events.next().await {
        let Followed::Event(event) = item else {
            continue;
        };
        println!("viewer event: {}", event.json);
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&event.json) else {
            continue;
        };
        if json["event"] == "button_click" && json["model"]["name"] == "reset" {
            if let Err(e) = plotwire.clear(NAME, SOURCE).await {
                eprintln!("clear failed: {e}");
            }
        }
    }
}

/// One line plot of a growing sine wave and a Reset button (docs/dashboard-spec.md).
const SPEC: &str = r#"{
    "title": "Live in the host app",
    "sources": {"wave": {"columns": {"t": "float64", "y": "float64"}, "max_rows": 600}},
    "plots": {
        "sine": {"kind": "line", "source": "wave", "x": "t", "y": "y", "title": "sin(t)"}
    },
    "widgets": {"reset": {"kind": "button", "label": "Reset"}},
    "layout": {"grid": {"sine": [0, 0, 1, 1], "reset": [1, 0, 1, 1]}, "cell_width": 600, "cell_height": 300}
}"#;
