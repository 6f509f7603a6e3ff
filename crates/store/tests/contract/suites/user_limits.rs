//! Limits a user's keys share: stored, joined to each key's verification record,
//! announced with the user's keys, and their credits drawn with the key's (both or
//! neither) from two connections.

use keyward_core::audit::EventQuery;
use keyward_core::credits::{CreditGrant, Interval, Refill, UserLimits};
use keyward_core::model::Scope;
use keyward_core::rate::RateLimit;
use keyward_store::{Consumed, Draw, EventStore, KeyStore, UsageStore, UserStore};

use super::fixture;
use crate::common::{admin, at, insert, user};

fn limits(requests: u32, credits: u64) -> UserLimits {
    UserLimits {
        rate_limit: RateLimit::new(requests, 60).ok(),
        credits: Some(CreditGrant {
            remaining: credits,
            refill: None,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_limits_are_stored_joined_to_their_keys_and_announced() {
    let f = fixture().await;
    let alice = user("alice");
    let key = insert(&f.store, "alice", "one", 0).await;
    let other = insert(&f.store, "bob", "two", 0).await;
    assert_eq!(f.store.user_limits(&alice).await.unwrap(), None);
    let view = f.store.find_by_hash(&key.hash).await.unwrap().unwrap();
    assert_eq!(view.owner, None, "no limits: no owner row");

    let hashes = f
        .store
        .set_user_limits(&alice, &limits(10, 7), at(5), &admin())
        .await
        .unwrap();
    assert_eq!(
        hashes,
        vec![key.hash],
        "the user's keys, to be dropped from caches"
    );
    let stored = f.store.user_limits(&alice).await.unwrap().unwrap();
    assert!(stored.explicit);
    assert_eq!(stored.limits, limits(10, 7));
    assert_eq!(stored.credits_set_at, Some(at(5)));
    let owner = f
        .store
        .find_by_hash(&key.hash)
        .await
        .unwrap()
        .unwrap()
        .owner
        .unwrap();
    assert_eq!(
        (owner.explicit, owner.rate_limit, owner.has_credits),
        (true, RateLimit::new(10, 60).ok(), true)
    );
    assert_eq!(
        f.store
            .find_by_hash(&other.hash)
            .await
            .unwrap()
            .unwrap()
            .owner,
        None,
        "another user's key is not touched"
    );

    let events = f
        .store
        .list_events(&EventQuery {
            user_id: Some(alice.clone()),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let set = events.last().unwrap();
    assert_eq!((set.action.as_str(), set.key_id), ("set_user_limits", None));
    let changes: serde_json::Value = serde_json::from_str(&set.changes).unwrap();
    assert_eq!(
        changes["credits"]["after"],
        serde_json::json!({"remaining": 7, "refill": null})
    );

    assert_eq!(
        f.store
            .delete_user_limits(&alice, at(6), &admin())
            .await
            .unwrap(),
        Some(vec![key.hash])
    );
    assert_eq!(f.store.user_limits(&alice).await.unwrap(), None);
    assert_eq!(
        f.store
            .delete_user_limits(&alice, at(7), &admin())
            .await
            .unwrap(),
        None,
        "nothing to remove"
    );
    // Deleting the user removes what their keys shared.
    f.store
        .set_user_limits(&alice, &limits(1, 1), at(8), &admin())
        .await
        .unwrap();
    f.store.delete_user(&alice, at(9), &admin()).await.unwrap();
    assert_eq!(f.store.user_limits(&alice).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_credits_are_drawn_by_all_their_keys_exactly_from_two_connections() {
    let f = fixture().await;
    let alice = user("alice");
    let mut one = keyward_store::NewKeyRecord::clone(&crate::common::new_key("alice", "one", 0));
    one.key.remaining = Some(100);
    f.store.insert_key(&one, 100, &admin()).await.unwrap();
    // The other key, without credits of its own, draws on the owner's only.
    insert(&f.store, "alice", "two", 0).await;
    f.store
        .set_user_limits(&alice, &limits(1000, 7), at(1), &admin())
        .await
        .unwrap();
    let own = one.key.id;
    let drawn = f
        .on_two_connections(8, 3, move |store, task| async move {
            // Half draw through the key with credits of its own, half through the other.
            let alice = user("alice");
            let draw = Draw {
                cost: 1,
                key: (task % 4 < 2).then_some((own, None)),
                user: &alice,
                user_refill_since: None,
                default: None,
                now: at(2),
            };
            store.draw(&draw).await.unwrap()
        })
        .await;
    let mut taken = 0;
    let mut key_taken = 0;
    for drawn in drawn {
        match drawn.user {
            Some(Consumed::Left(_)) => {
                taken += 1;
                key_taken += usize::from(matches!(drawn.key, Some(Consumed::Left(_))));
            }
            Some(Consumed::Exceeded) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(taken, 7, "seven in all, whichever key");
    let stored = f
        .store
        .get_key(Scope::Admin, one.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.remaining,
        Some(100 - key_taken as u64),
        "the key's own credits taken only with the owner's (both or neither)"
    );
    assert_eq!(
        f.store
            .user_limits(&alice)
            .await
            .unwrap()
            .unwrap()
            .limits
            .credits
            .unwrap()
            .remaining,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_credits_are_made_once_at_first_use_and_renew() {
    let f = fixture().await;
    let carol = user("carol");
    let daily = Refill::new(3, Interval::Day, None).unwrap();
    let default = CreditGrant {
        remaining: 3,
        refill: Some(daily),
    };
    let draw = |since, now| Draw {
        cost: 1,
        key: None,
        user: &carol,
        user_refill_since: Some(since),
        default: Some(default),
        now,
    };
    let day = daily.period_start(at(0));
    let check = Draw {
        cost: 0,
        ..draw(day, at(0))
    };
    assert_eq!(
        f.store.draw(&check).await.unwrap().user,
        Some(Consumed::Left(3)),
        "a check sees the default without making it"
    );
    assert_eq!(f.store.user_limits(&carol).await.unwrap(), None);
    let (first, second) = (draw(day, at(0)), draw(day, at(0)));
    let (one, two) = tokio::join!(f.store.draw(&first), f.store.draw(&second));
    let mut left = [one.unwrap().user, two.unwrap().user];
    left.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(left, [Some(Consumed::Left(1)), Some(Consumed::Left(2))]);
    let made = f.store.user_limits(&carol).await.unwrap().unwrap();
    assert!(
        !made.explicit,
        "a balance for the defaults, not limits of the user's own"
    );
    assert_eq!(
        f.store.draw(&draw(day, at(0))).await.unwrap().user,
        Some(Consumed::Left(0))
    );
    assert_eq!(
        f.store.draw(&draw(day, at(0))).await.unwrap().user,
        Some(Consumed::Exceeded)
    );
    let tomorrow = daily.next_after(at(0));
    assert_eq!(
        f.store.draw(&draw(tomorrow, tomorrow)).await.unwrap().user,
        Some(Consumed::Left(2)),
        "renewed at the boundary"
    );
    // A user without limits or defaults has none.
    let dave = user("dave");
    let free = Draw {
        user: &dave,
        default: None,
        ..draw(day, at(0))
    };
    assert_eq!(
        f.store.draw(&free).await.unwrap().user,
        Some(Consumed::Unlimited)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_limits_never_refills_a_default_balance() {
    let f = fixture().await;
    let gail = user("gail");
    let default = CreditGrant {
        remaining: 2,
        refill: None,
    };
    let draw = Draw {
        cost: 2,
        key: None,
        user: &gail,
        user_refill_since: None,
        default: Some(default),
        now: at(0),
    };
    assert_eq!(
        f.store.draw(&draw).await.unwrap().user,
        Some(Consumed::Left(0))
    );
    assert_eq!(
        f.store
            .delete_user_limits(&gail, at(1), &admin())
            .await
            .unwrap(),
        None,
        "no limits of the user's own to remove"
    );
    assert_eq!(
        f.store.draw(&draw).await.unwrap().user,
        Some(Consumed::Exceeded),
        "the default balance is still spent"
    );
}
