use utoipa_axum::router::OpenApiRouter;
use crate::app::AppState;
/// Routes.
pub fn router() -> OpenApiRouter<AppState> { OpenApiRouter::new() }
