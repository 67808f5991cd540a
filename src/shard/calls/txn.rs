//! Transactional requests on the shard coordinating the transactional id: each
//! request type of [`crate::txn::requests`] is a call, served through the
//! shard's [`TxnHost`] view.

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::call::ShardCall;
use crate::txn::host::TxnHost;
use crate::txn::listing::{DescribeTxns, ListTxns, ListedTxn};
use crate::txn::requests::{AddToTxn, EndTxn, InitTxnProducer, VerifyTxn};
use crate::txn::state::{TxnMetadata, TxnPartition};
use crate::types::{ProducerEpoch, ProducerId};

macro_rules! txn_call {
    ($call:ty => $reply:ty, sync) => {
        impl ShardCall for $call {
            type Reply = $reply;

            async fn run(self, shard: Rc<Shard>) -> $reply {
                let host: Rc<dyn TxnHost> = shard;
                self.serve(&host)
            }
        }
    };
    ($call:ty => $reply:ty) => {
        impl ShardCall for $call {
            type Reply = $reply;

            async fn run(self, shard: Rc<Shard>) -> $reply {
                let host: Rc<dyn TxnHost> = shard;
                self.serve(&host).await
            }
        }
    };
}

txn_call!(InitTxnProducer => Result<(ProducerId, ProducerEpoch), ErrorCode>);
txn_call!(AddToTxn => ErrorCode);
txn_call!(EndTxn => Result<(ProducerId, ProducerEpoch), ErrorCode>);
txn_call!(VerifyTxn => Result<BTreeSet<TxnPartition>, ErrorCode>, sync);
txn_call!(DescribeTxns => Vec<Result<TxnMetadata, ErrorCode>>, sync);
txn_call!(ListTxns => Vec<ListedTxn>, sync);
