//! ApiVersions: the hand-written table of `protocol::api_versions`, and (v3+)
//! the `transaction.version` feature, supported and finalized.

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::protocol::StrBytes;

use crate::protocol::api_versions::{
    FINALIZED_FEATURES_EPOCH, SUPPORTED, TRANSACTION_VERSION_FEATURE,
    TRANSACTION_VERSION_FINALIZED, TRANSACTION_VERSION_SUPPORTED,
};

pub fn supported() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub fn handle() -> ApiVersionsResponse {
    let (min, max) = TRANSACTION_VERSION_SUPPORTED;
    ApiVersionsResponse::default()
        .with_api_keys(supported())
        .with_supported_features(vec![
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(TRANSACTION_VERSION_FEATURE))
                .with_min_version(min)
                .with_max_version(max),
        ])
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(vec![
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(TRANSACTION_VERSION_FEATURE))
                .with_min_version_level(TRANSACTION_VERSION_FINALIZED)
                .with_max_version_level(TRANSACTION_VERSION_FINALIZED),
        ])
}
