//! Group work on the shard coordinating the group: each group request type of
//! [`crate::group::requests`] is a call, served through the shard's
//! [`GroupHost`] view.

use std::rc::Rc;

use crate::group::host::GroupHost;
use crate::group::requests::{
    CommitOffsets, DeleteGroups, DeleteOffsets, DescribeGroups, FetchOffsets, FetchedOffsets,
    GroupDescription, GroupHeartbeat, JoinGroup, LeaveGroup, ListGroups, ListedGroup, SyncGroup,
    TxnCommitOffsets,
};
use crate::group::state::{JoinResult, SyncResult};
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::call::ShardCall;

macro_rules! group_call {
    ($call:ty => $reply:ty, async) => {
        impl ShardCall for $call {
            type Reply = $reply;

            async fn run(self, shard: Rc<Shard>) -> $reply {
                let host: Rc<dyn GroupHost> = shard;
                self.serve(&host).await
            }
        }
    };
    ($call:ty => $reply:ty) => {
        impl ShardCall for $call {
            type Reply = $reply;

            async fn run(self, shard: Rc<Shard>) -> $reply {
                let host: Rc<dyn GroupHost> = shard;
                self.serve(&host)
            }
        }
    };
}

group_call!(JoinGroup => JoinResult, async);
group_call!(SyncGroup => SyncResult, async);
group_call!(GroupHeartbeat => ErrorCode);
group_call!(LeaveGroup => Result<Vec<ErrorCode>, ErrorCode>);
group_call!(CommitOffsets => ErrorCode, async);
group_call!(TxnCommitOffsets => ErrorCode, async);
group_call!(FetchOffsets => Vec<FetchedOffsets>);
group_call!(DescribeGroups => Vec<GroupDescription>);
group_call!(ListGroups => Vec<ListedGroup>);
group_call!(DeleteGroups => Vec<ErrorCode>, async);
group_call!(DeleteOffsets => Result<Vec<ErrorCode>, ErrorCode>, async);
