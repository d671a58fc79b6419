//! HTTP routes of the alliance: inventory, retail sales, returns, refunds, complaints,
//! ratings and standings (docs/protocol.md, "Alliance").
//!
//! Every change is a journaled `Command::Alliance` through the engine, answered only once
//! durable, from the objects its events carry; reads come from the alliance's durable read
//! view (`crate::pipeline::Board`). Role checks happen here; "its dealer" checks, which
//! need the alliance's state, happen in the rules.

use super::routes::{check_amount, decode_body, parse_id, ApiError, AppState, Body, Caller};
use crate::alliance::{
    Actor, AllianceCommand, AllianceEvent, AllianceRefusal, Cause, Channel, Complaint, ComplaintId,
    Finding, Item, ItemId, Record, ReturnReason, Standing, Warning,
};
use crate::directory::Principal;
use crate::market::{Command, Event};
use crate::vocab::DealerId;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest consumer reference, in characters.
pub const MAX_REF_CHARS: usize = 128;
/// Longest free text (complaint, return details, resolution), in characters.
pub const MAX_TEXT_CHARS: usize = 4_000;

/// The alliance's routes, for any application state that holds the API's.
pub fn router<S>() -> Router<S>
where
    AppState: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/v1/inventory", get(list_inventory))
        .route("/v1/inventory/{id}", get(get_item))
        .route("/v1/inventory/{id}/retail", post(retail))
        .route("/v1/inventory/{id}/returns", post(return_item))
        .route("/v1/inventory/{id}/refund", post(refund))
        .route("/v1/inventory/{id}/dispose", post(dispose))
        .route(
            "/v1/complaints",
            post(open_complaint).get(super::reads::list_complaints),
        )
        .route("/v1/complaints/{id}", get(super::reads::get_complaint))
        .route("/v1/complaints/{id}/resolve", post(resolve_complaint))
        .route("/v1/dealers/{id}/ratings", post(rate))
        .route("/v1/dealers/{id}/standing", get(standing))
}

// ---------------------------------------------------------------------------------------
// Wire shapes

fn item_json(s: &AppState, i: &Item) -> Value {
    let mut v = json!({
        "id": i.id.to_string(),
        "auction": i.auction.to_string(),
        "vin": i.vin,
        "dealer": i.dealer.to_string(),
        "price": i.price,
        "certified": i.certified,
        "reasons": i.reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "inspection_sha256": hex::encode(i.inspection_sha256),
        "status": i.status.as_str(),
        "delivered_at": i.delivered_at,
        "inspection": inspection_json(&i.inspection),
        "rated": i.rated,
    });
    let Some(m) = v.as_object_mut() else {
        return v;
    };
    // In a cluster, the market that sold the car: its auction id is that market's.
    if let Some(market) = s.alliance.origin(i.id).or_else(|| s.market.clone()) {
        m.insert("market".into(), market.into());
    }
    // Consumer references and details stay with the consumer site: the catalogue is public.
    if let Some(r) = &i.retail {
        m.insert("retail_at".into(), r.at.into());
        m.insert("return_until".into(), r.return_until.into());
    }
    if let Some(r) = &i.return_claim {
        m.insert("returned_at".into(), r.at.into());
        m.insert("findings".into(), json!(r.findings));
    }
    if let Some(t) = i.refunded_at {
        m.insert("refunded_at".into(), t.into());
    }
    // The dealer's note may name its buyer: it stays with the dealer and operators.
    if let Some(d) = &i.disposal {
        m.insert("disposed_at".into(), d.at.into());
        m.insert("disposal_channel".into(), d.channel.as_str().into());
    }
    m.insert("history".into(), history_json(i));
    v
}

/// The item's life, oldest first: what the dealer's inventory history shows.
fn history_json(i: &Item) -> Value {
    let mut steps = vec![json!({"event": "delivered", "at": i.delivered_at})];
    if let Some(r) = &i.retail {
        steps.push(json!({"event": "retailed", "at": r.at}));
    }
    if let Some(r) = &i.return_claim {
        steps.push(json!({"event": "returned", "at": r.at}));
    }
    if let Some(t) = i.refunded_at {
        steps.push(json!({"event": "refunded", "at": t}));
    }
    if let Some(d) = &i.disposal {
        steps.push(json!({"event": "disposed", "at": d.at, "channel": d.channel.as_str()}));
    }
    Value::Array(steps)
}

/// The item as its holding dealer or an operator sees it: the public item and the note of
/// its disposal.
fn private_item_json(s: &AppState, i: &Item) -> Value {
    let mut v = item_json(s, i);
    // A car another market sold on credit: the loan as that market last relayed it.
    let loan = s
        .alliance
        .origin(i.id)
        .and_then(|market| s.alliance.remote_loan(&market, i.auction));
    if let (Some(l), Some(m)) = (loan, v.as_object_mut()) {
        let status = if l.repaid { "repaid" } else { "open" };
        m.insert(
            "loan".into(),
            json!({"id": l.loan.to_string(), "status": status}),
        );
    }
    if let (Some(d), Some(m)) = (&i.disposal, v.as_object_mut()) {
        m.insert("disposal_note".into(), d.note.clone().into());
    }
    v
}

/// Whether `caller` may see the item's private fields.
fn sees_private(caller: &Caller, i: &Item) -> bool {
    match caller.0 {
        Principal::Admin => true,
        Principal::Dealer(d) => d == i.dealer,
        _ => false,
    }
}

/// The inspection report as listed: the object its `inspection_sha256` is the hash of.
pub(crate) fn inspection_json(r: &crate::vocab::Inspection) -> Value {
    json!({
        "structural_damage": r.structural_damage,
        "fire": r.fire,
        "flood": r.flood,
        "odometer_tampered": r.odometer_tampered,
        "title_transferable": r.title_transferable,
        "grade": r.grade,
        "notes": r.notes,
    })
}

pub(crate) fn complaint_json(c: &Complaint) -> Value {
    json!({
        "id": c.id.to_string(),
        "dealer": c.dealer.to_string(),
        "inventory": c.item.map(|i| i.to_string()),
        "status": c.status.as_str(),
        "opened_at": c.opened_at,
        "due_at": c.due_at,
        "resolved_at": c.resolved_at,
        "warning": c.warning.map(|w| w.to_string()),
    })
}

pub(crate) fn warning_json(w: &Warning) -> Value {
    let mut v = json!({
        "id": w.id.to_string(),
        "cause": w.cause.as_str(),
        "corrected": w.corrected(),
        "issued_at": w.issued_at,
        "corrected_at": w.corrected_at,
    });
    if let Some(m) = v.as_object_mut() {
        match w.cause {
            Cause::HiddenDamage { item }
            | Cause::TitleNotTransferable { item }
            | Cause::ZeroToleranceRetail { item } => {
                m.insert("inventory".into(), item.to_string().into());
            }
            Cause::OverdueComplaint { complaint } => {
                m.insert("complaint".into(), complaint.to_string().into());
            }
            Cause::SoldOutOfTrust { item, loan } => {
                m.insert("inventory".into(), item.to_string().into());
                m.insert("loan".into(), loan.to_string().into());
            }
            Cause::LateRepayment { loan } => {
                m.insert("loan".into(), loan.to_string().into());
            }
        }
    }
    v
}

pub(crate) fn standing_json(s: &Standing) -> Value {
    let mut v = json!({
        "dealer": s.dealer.to_string(),
        "score": s.score(),
        "ratings": s.ratings,
        "violations": s.violations,
        "refused_retail": s.refused_retail,
        "warnings": s.warnings.iter().map(warning_json).collect::<Vec<_>>(),
        "status": s.status,
    });
    // Only a market of a cluster notes other markets' warnings: a single server's
    // standing keeps its shape.
    if !s.remote_warnings.is_empty() {
        v["remote_warnings"] = s
            .remote_warnings
            .iter()
            .map(|w| {
                json!({
                    "market": w.market,
                    "id": w.warning.to_string(),
                    "issued_at": w.issued_at,
                    "corrected": w.corrected(),
                    "corrected_at": w.corrected_at,
                })
            })
            .collect();
    }
    v
}

// ---------------------------------------------------------------------------------------
// Plumbing

impl From<AllianceRefusal> for ApiError {
    fn from(r: AllianceRefusal) -> Self {
        let code = r.code();
        match r {
            AllianceRefusal::UnknownItem => Self::not_found("inventory item"),
            AllianceRefusal::UnknownComplaint => Self::not_found("complaint"),
            AllianceRefusal::UnknownDealer => Self::not_found("dealer"),
            AllianceRefusal::NotAllowed => Self::forbidden(),
            AllianceRefusal::WrongDealer => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                "the inventory item belongs to another dealer",
            ),
            AllianceRefusal::InvalidRating
            | AllianceRefusal::InvalidAmount
            | AllianceRefusal::InvalidMarket => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "the request breaks an alliance rule",
            ),
            AllianceRefusal::NotRetailed => Self::new(
                StatusCode::CONFLICT,
                code,
                "the car has not been sold to a consumer",
            ),
            AllianceRefusal::ReturnWindowClosed => Self::new(
                StatusCode::CONFLICT,
                code,
                "the return window (120 h from the retail sale) has closed",
            ),
            AllianceRefusal::AlreadyReturned => {
                Self::new(StatusCode::CONFLICT, code, "the car was already returned")
            }
            AllianceRefusal::AlreadyRated => Self::new(
                StatusCode::CONFLICT,
                code,
                "this retail sale was already rated",
            ),
            AllianceRefusal::AlreadyResolved => Self::new(
                StatusCode::CONFLICT,
                code,
                "the complaint was already resolved",
            ),
            AllianceRefusal::WrongState
            | AllianceRefusal::NotSold
            | AllianceRefusal::RecordMismatch => Self::new(
                StatusCode::CONFLICT,
                "wrong_state",
                "the inventory item is not in a state that allows this",
            ),
        }
    }
}

/// Submits an alliance command; its events once durable, or the refusal as an error.
async fn submit(state: &AppState, command: AllianceCommand) -> Result<Vec<Event>, ApiError> {
    submit_mapped(state, command, ApiError::from).await
}

/// An inventory item named in a request's body rather than its path: one that does not
/// exist is an invalid field (`422 unknown_item`), not a missing resource (`404`).
fn item_in_body(r: AllianceRefusal) -> ApiError {
    match r {
        AllianceRefusal::UnknownItem => unknown_item(),
        other => other.into(),
    }
}

fn unknown_item() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_item",
        "inventory does not name an inventory item",
    )
}

/// [`submit`], with the refusal turned into an error by `refused`.
async fn submit_mapped(
    state: &AppState,
    command: AllianceCommand,
    refused: fn(AllianceRefusal) -> ApiError,
) -> Result<Vec<Event>, ApiError> {
    let applied = state
        .engine
        .submit(Command::Alliance(command))
        .await
        .map_err(|_| ApiError::unavailable())?;
    if let Some(r) = applied.events.iter().find_map(|e| match e {
        Event::Alliance(AllianceEvent::Refused(r)) => Some(*r),
        _ => None,
    }) {
        return Err(refused(r));
    }
    Ok(applied.events)
}

fn item_of(events: &[Event]) -> Option<&Item> {
    events.iter().find_map(|e| match e {
        Event::Alliance(AllianceEvent::ItemChanged(i)) => Some(&**i),
        _ => None,
    })
}

fn complaint_of(events: &[Event]) -> Option<&Complaint> {
    events.iter().find_map(|e| match e {
        Event::Alliance(AllianceEvent::ComplaintChanged(c)) => Some(&**c),
        _ => None,
    })
}

fn record_of(events: &[Event]) -> Option<&Record> {
    events.iter().find_map(|e| match e {
        Event::Alliance(AllianceEvent::RecordChanged { record, .. }) => Some(record),
        _ => None,
    })
}

/// Durable but without the object it should carry: a server bug, not the client's.
fn missing() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the change was made but its result could not be read; read it back",
    )
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
}

/// The consumer site (or an operator acting for it).
fn require_service(caller: &Caller) -> Result<(), ApiError> {
    match caller.0 {
        Principal::Service(_) | Principal::Admin => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

/// A free-text field: trimmed, without control characters other than line breaks and tabs,
/// at most `max` characters, and not blank when `required`.
fn text(field: &str, raw: &str, max: usize, required: bool) -> Result<String, ApiError> {
    let t = raw.trim();
    if required && t.is_empty() {
        return Err(invalid(format!("{field} must not be blank")));
    }
    if t.chars().count() > max {
        return Err(invalid(format!("{field} must be at most {max} characters")));
    }
    if t.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(t.to_string())
}

fn consumer_ref(raw: &str) -> Result<String, ApiError> {
    let r = text("consumer_ref", raw, MAX_REF_CHARS, true)?;
    if r.contains(['\n', '\r', '\t']) {
        return Err(invalid("consumer_ref must be one line"));
    }
    Ok(r)
}

/// The checks this file's handlers make of a body, from its bytes (see
/// `routes::check_body`). `None` for a route with no body here.
pub(crate) fn check_body(route: &str, bytes: &[u8]) -> Option<Result<(), ApiError>> {
    let checked = match route {
        "retail" => decode_body::<RetailBody>(bytes).and_then(|b| b.check().map(drop)),
        "return" => decode_body::<ReturnBody>(bytes).and_then(|b| b.check().map(drop)),
        "dispose" => decode_body::<DisposeBody>(bytes).and_then(|b| b.check().map(drop)),
        "complaints" => decode_body::<ComplaintBody>(bytes).and_then(|b| b.check().map(drop)),
        "resolve" => decode_body::<ResolveBody>(bytes).and_then(|b| b.check().map(drop)),
        "ratings" => decode_body::<RatingBody>(bytes).and_then(|b| b.check().map(drop)),
        _ => return None,
    };
    Some(checked)
}

/// The checks `GET /v1/inventory` makes of its query string.
pub(crate) fn check_inventory_query(q: &InventoryQuery) -> Result<(), ApiError> {
    q.filters().map(drop)
}

// ---------------------------------------------------------------------------------------
// Handlers

#[derive(Deserialize)]
pub(crate) struct InventoryQuery {
    certified: Option<String>,
    dealer: Option<String>,
}

impl InventoryQuery {
    /// `certified` and `dealer`, when given.
    fn filters(&self) -> Result<(Option<bool>, Option<DealerId>), ApiError> {
        let certified = match self.certified.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "certified must be true or false, not {other:?}"
                )))
            }
        };
        let dealer = match self.dealer.as_deref() {
            None => None,
            Some(raw) => Some(
                raw.parse::<DealerId>()
                    .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a dealer id")))?,
            ),
        };
        Ok((certified, dealer))
    }
}

async fn list_inventory(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<InventoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let (certified, dealer) = q.filters()?;
    let items: Vec<Value> = s
        .alliance
        .items(certified, dealer)
        .iter()
        .map(|i| {
            if sees_private(&caller, i) {
                private_item_json(&s, i)
            } else {
                item_json(&s, i)
            }
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn get_item(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: ItemId = parse_id(&id, "inventory item")?;
    let item = s
        .alliance
        .item(id)
        .ok_or_else(|| ApiError::not_found("inventory item"))?;
    if sees_private(&caller, &item) {
        return Ok(Json(private_item_json(&s, &item)));
    }
    Ok(Json(item_json(&s, &item)))
}

#[derive(Deserialize)]
struct RetailBody {
    consumer_ref: String,
    price: u64,
}

impl RetailBody {
    /// The consumer reference and the price, checked.
    fn check(&self) -> Result<(String, u64), ApiError> {
        if self.price == 0 {
            return Err(invalid("price must be at least 1 fen"));
        }
        Ok((
            consumer_ref(&self.consumer_ref)?,
            check_amount(self.price, "price")?,
        ))
    }
}

async fn retail(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<RetailBody>,
) -> Result<Json<Value>, ApiError> {
    let item: ItemId = parse_id(&id, "inventory item")?;
    let Principal::Dealer(dealer) = caller.0 else {
        return Err(ApiError::forbidden());
    };
    let (consumer_ref, price) = b.check()?;
    let events = submit(
        &s,
        AllianceCommand::Retail {
            item,
            by: Actor::Dealer(dealer),
            consumer_ref,
            price,
        },
    )
    .await?;
    if let Some(refused) = events.iter().find_map(|e| match e {
        Event::Alliance(AllianceEvent::RetailRefused {
            reasons, warning, ..
        }) => Some(zero_tolerance(item, reasons, *warning)),
        _ => None,
    }) {
        return Err(refused);
    }
    Ok(Json(item_json(&s, item_of(&events).ok_or_else(missing)?)))
}

/// `409 zero_tolerance`: the retail sale was refused, and the attempt recorded.
fn zero_tolerance(
    item: ItemId,
    reasons: &[crate::alliance::Reason],
    warning: Option<crate::alliance::WarningId>,
) -> ApiError {
    let names: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
    ApiError::new(
        StatusCode::CONFLICT,
        "zero_tolerance",
        format!(
            "the alliance does not sell consumers a car whose report shows {}; the attempt \
             is recorded against the dealer. Sell it out of the alliance instead: \
             POST /v1/inventory/{item}/dispose",
            names.join(", ")
        ),
    )
    .with("reasons", json!(names))
    .with("warning", json!(warning.map(|w| w.to_string())))
}

#[derive(Deserialize)]
struct ReturnBody {
    consumer_ref: String,
    reason: String,
    #[serde(default)]
    details: String,
    /// Extension: what the consumer site's check found that the report did not show.
    #[serde(default)]
    findings: Vec<String>,
}

/// A return's reason, findings, consumer reference and details, as checked.
type CheckedReturn = (ReturnReason, Vec<Finding>, String, String);

impl ReturnBody {
    /// Every field, checked in the contract's order.
    fn check(&self) -> Result<CheckedReturn, ApiError> {
        let reason = match self.reason.as_str() {
            "not_as_described" => ReturnReason::NotAsDescribed,
            other => {
                return Err(invalid(format!(
                    "reason must be \"not_as_described\", not {other:?}"
                )))
            }
        };
        let findings = self
            .findings
            .iter()
            .map(|f| {
                serde_json::from_value::<Finding>(Value::String(f.clone())).map_err(|_| {
                    invalid(format!(
                        "finding {f:?} is not one of structural_damage, fire, flood, \
                         title_not_transferable"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            reason,
            findings,
            consumer_ref(&self.consumer_ref)?,
            text("details", &self.details, MAX_TEXT_CHARS, false)?,
        ))
    }
}

async fn return_item(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<ReturnBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let item: ItemId = parse_id(&id, "inventory item")?;
    require_service(&caller)?;
    let (reason, findings, consumer_ref, details) = b.check()?;
    let events = submit(
        &s,
        AllianceCommand::Return {
            item,
            consumer_ref,
            reason,
            details,
            findings,
        },
    )
    .await?;
    let item = item_of(&events).ok_or_else(missing)?;
    Ok((StatusCode::CREATED, Json(item_json(&s, item))))
}

async fn refund(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let item: ItemId = parse_id(&id, "inventory item")?;
    require_service(&caller)?;
    let events = submit(&s, AllianceCommand::Refund { item }).await?;
    Ok(Json(item_json(&s, item_of(&events).ok_or_else(missing)?)))
}

#[derive(Deserialize)]
struct DisposeBody {
    channel: String,
    #[serde(default)]
    note: String,
}

impl DisposeBody {
    /// The channel and the note, checked.
    fn check(&self) -> Result<(Channel, String), ApiError> {
        let channel = match self.channel.as_str() {
            "wholesale" => Channel::Wholesale,
            "export" => Channel::Export,
            "scrap" => Channel::Scrap,
            other => {
                return Err(invalid(format!(
                    "channel must be one of wholesale, export, scrap, not {other:?}"
                )))
            }
        };
        Ok((channel, text("note", &self.note, MAX_TEXT_CHARS, false)?))
    }
}

async fn dispose(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<DisposeBody>,
) -> Result<Json<Value>, ApiError> {
    let item: ItemId = parse_id(&id, "inventory item")?;
    let by = match caller.0 {
        Principal::Dealer(d) => Actor::Dealer(d),
        Principal::Admin => Actor::Admin,
        _ => return Err(ApiError::forbidden()),
    };
    let (channel, note) = b.check()?;
    let events = submit(
        &s,
        AllianceCommand::Dispose {
            item,
            by,
            channel,
            note,
        },
    )
    .await?;
    Ok(Json(private_item_json(
        &s,
        item_of(&events).ok_or_else(missing)?,
    )))
}

#[derive(Deserialize)]
struct ComplaintBody {
    dealer: String,
    #[serde(default)]
    inventory: Option<String>,
    consumer_ref: String,
    text: String,
}

fn unknown_dealer() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_dealer",
        "dealer does not name a dealer",
    )
}

impl ComplaintBody {
    /// The dealer named and the complaint as a command, every field checked.
    fn check(&self) -> Result<(DealerId, AllianceCommand), ApiError> {
        let dealer: DealerId = self.dealer.parse().map_err(|_| unknown_dealer())?;
        let item = match self.inventory.as_deref() {
            None => None,
            Some(raw) => Some(raw.parse::<ItemId>().map_err(|_| unknown_item())?),
        };
        let command = AllianceCommand::OpenComplaint {
            dealer,
            item,
            consumer_ref: consumer_ref(&self.consumer_ref)?,
            text: text("text", &self.text, MAX_TEXT_CHARS, true)?,
        };
        Ok((dealer, command))
    }
}

async fn open_complaint(
    State(s): State<AppState>,
    caller: Caller,
    Body(b): Body<ComplaintBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_service(&caller)?;
    let (dealer, command) = b.check()?;
    if s.alliance.standing(dealer).is_none() {
        return Err(unknown_dealer());
    }
    let events = submit_mapped(&s, command, item_in_body).await?;
    let c = complaint_of(&events).ok_or_else(missing)?;
    Ok((StatusCode::CREATED, Json(complaint_json(c))))
}

#[derive(Deserialize)]
struct ResolveBody {
    resolution: String,
}

impl ResolveBody {
    /// The resolution's text, checked.
    fn check(&self) -> Result<String, ApiError> {
        text("resolution", &self.resolution, MAX_TEXT_CHARS, true)
    }
}

async fn resolve_complaint(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<ResolveBody>,
) -> Result<Json<Value>, ApiError> {
    let complaint: ComplaintId = parse_id(&id, "complaint")?;
    let by = match caller.0 {
        Principal::Dealer(d) => Actor::Dealer(d),
        Principal::Admin => Actor::Admin,
        _ => return Err(ApiError::forbidden()),
    };
    let events = submit(
        &s,
        AllianceCommand::ResolveComplaint {
            complaint,
            by,
            resolution: b.check()?,
        },
    )
    .await?;
    Ok(Json(complaint_json(
        complaint_of(&events).ok_or_else(missing)?,
    )))
}

#[derive(Deserialize)]
struct RatingBody {
    inventory: String,
    consumer_ref: String,
    condition: u64,
    service: u64,
}

impl RatingBody {
    /// The item, the two marks and the consumer reference, checked in that order.
    fn check(&self) -> Result<(ItemId, u8, u8, String), ApiError> {
        let item: ItemId = self.inventory.parse().map_err(|_| unknown_item())?;
        let mark = |field: &str, v: u64| {
            u8::try_from(v)
                .ok()
                .filter(|m| (1..=5).contains(m))
                .ok_or_else(|| invalid(format!("{field} must be an integer from 1 to 5")))
        };
        let (condition, service) = (
            mark("condition", self.condition)?,
            mark("service", self.service)?,
        );
        Ok((item, condition, service, consumer_ref(&self.consumer_ref)?))
    }
}

async fn rate(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<RatingBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let dealer: DealerId = parse_id(&id, "dealer")?;
    require_service(&caller)?;
    if s.alliance.standing(dealer).is_none() {
        return Err(ApiError::not_found("dealer"));
    }
    let (item, condition, service, consumer_ref) = b.check()?;
    let events = submit_mapped(
        &s,
        AllianceCommand::Rate {
            dealer,
            item,
            consumer_ref,
            condition,
            service,
        },
        item_in_body,
    )
    .await?;
    let record = record_of(&events).ok_or_else(missing)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "dealer": dealer.to_string(),
            "inventory": item.to_string(),
            "condition": condition,
            "service": service,
            "score": record.score_tenths().map(|t| f64::from(t) / 10.0),
            "ratings": record.ratings,
        })),
    ))
}

async fn standing(
    State(s): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let dealer: DealerId = parse_id(&id, "dealer")?;
    let standing = s
        .alliance
        .standing(dealer)
        .ok_or_else(|| ApiError::not_found("dealer"))?;
    Ok(Json(standing_json(&standing)))
}
